"""The policy engine: policy files, facts, phases and decisions.

    load_policy(path=None, project_root=None) -> Policy      read + validate + compile (SpecError on problems)
    parse_policy(text, file) -> Policy                       the same from text
    default_policy_path(project_root) -> Path                policies/default.yaml, else the packaged one
    decide(domain, evidence, policy) -> Decision             pure; default deny; forbid beats permit
    decide_safely(domain, evidence, policy_path=..., ...)    the same, but a broken policy denies everything
    ACTIONS                                                  every action a decision covers

The pure core (facts, phase, engine) does no I/O; ``load_policy`` (and ``decide_safely``, which calls
it) reads the policy file, and ``graduation.policy.registry`` reads decisions' inputs from the store.
"""

from graduation.policy.engine import ActionDecision, Decision, decide, deny_all
from graduation.policy.model import ACTIONS, Policy, Thresholds, default_policy_path, load_policy, parse_policy
from graduation.policy.registry import decide_safely

__all__ = ["ACTIONS", "ActionDecision", "Decision", "Policy", "Thresholds", "decide", "decide_safely",
           "default_policy_path", "deny_all", "load_policy", "parse_policy"]

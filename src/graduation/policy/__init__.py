"""The policy engine: policy files, facts, phases and decisions. Pure: it never reads the registry.

    load_policy(path=None, project_root=None) -> Policy      read + validate + compile (SpecError on problems)
    parse_policy(text, file) -> Policy                       the same from text
    default_policy_path(project_root) -> Path                policies/default.yaml, else the packaged one
    decide(domain, evidence, policy) -> Decision             default deny; forbid beats permit
    ACTIONS                                                  every action a decision covers

Facts, phase and engine do no I/O; ``load_policy`` reads the policy file. Decisions for registered
domains (reading the store, checking the chain and the disk) are made by ``graduation.service.decisions``.
"""

from graduation.policy.engine import ActionDecision, Decision, decide, deny_all
from graduation.policy.model import ACTIONS, Policy, Thresholds, default_policy_path, load_policy, parse_policy

__all__ = ["ACTIONS", "ActionDecision", "Decision", "Policy", "Thresholds", "decide", "default_policy_path",
           "deny_all", "load_policy", "parse_policy"]

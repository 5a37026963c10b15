"""The TRL runtime: the only package that imports torch, transformers or trl.

    tiny      build_tiny_base(out_dir, corpus): a tiny Llama + locally trained tokenizer, pretrained briefly
    rewards   reward_functions / domain_rewards: one GRPO reward function per verifier
    runner    run(RunSpec): GRPO or SFT with evaluation rounds; crystallise(checkpoint, ...): verified samples
    models    resolve_model(name, root): local paths, cached hub ids, and ``tiny:<corpus>`` built on demand

Import the submodules you need; importing this package imports nothing heavy.
"""

__all__ = ["models", "rewards", "runner", "tiny"]

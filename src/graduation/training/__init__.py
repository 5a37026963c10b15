"""The TRL runtime: the only package that imports torch, transformers or trl.

    tiny      build_tiny_base(out_dir, corpus): a tiny Llama + locally trained tokenizer, pretrained briefly
    rewards   reward_functions / domain_rewards: one GRPO reward function per verifier
    runner    run(RunSpec): GRPO or SFT with evaluation rounds; crystallise(checkpoint, ...): verified samples
    models    resolve_model(name, root): local paths, cached hub ids, and ``tiny:<corpus>`` built on demand

Import the submodules you need; importing this package imports nothing heavy.
"""

import os as _os
import warnings as _warnings

# One progress bar (ours) and no deprecation chatter from the libraries: users can't act on either.
# Set before transformers, datasets or huggingface_hub are imported, which read them once.
for _name, _value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                      ("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_OFFLINE", "1")):
    _os.environ.setdefault(_name, _value)
for _module in ("transformers", "trl", "accelerate", "datasets", "torch"):
    _warnings.filterwarnings("ignore", category=FutureWarning, module=_module)
    _warnings.filterwarnings("ignore", category=DeprecationWarning, module=_module)

__all__ = ["models", "rewards", "runner", "tiny"]

"""The runner's own settings (not ``GRPOConfig``/``SFTConfig`` fields), with what each does. Imports nothing heavy:
the job layer splits a domain's hyperparameters into trainer fields and these keys before a run."""

RUNNER_KEYS = {
    "eval_every_steps": "evaluate held-out prompts every N optimizer steps (0: only before and after)",
    "eval_before_training": "evaluate the starting model as round 0 (default: true for GRPO, false for SFT)",
    "eval_samples": "answers per held-out prompt: 0 = one greedy answer, k > 0 = k samples",
    "eval_temperature": "sampling temperature of evaluation samples (default 1.0)",
    "eval_max_new_tokens": "longest evaluation answer in tokens (default: max_completion_length, else 64)",
    "crystallise_samples": "samples per training prompt when an SFT set is crystallised from this job (default 4)",
    "crystallise_temperature": "sampling temperature when crystallising (default 1.0)",
    "torch_threads": "CPU threads for torch (default: what torch picks)",
    "no_signal_steps": "GRPO: stop with 'no learning signal' when the mean reward stays the same for this many "
                       "optimizer steps (default 50; 0 never stops)",
}

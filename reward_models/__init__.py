"""Process reward models: one file per PRM family (adapter), all declared in YAML.

Families register lazily (they import torch): `step_tag`, `mean_logit`, `token_classify`, `judge`.
A user's own PRM class registers with `@PRM_FAMILIES.register("my_family")` in a module named by a
`rebase.plugins` entry point (rebase/plugins.py).
"""

from rebase.registry import PRM_FAMILIES

PRM_FAMILIES.register_lazy(
    "step_tag",
    "reward_models.step_tag:make_step_tag",
    "Math-Shepherd style: good/bad label tokens at a step tag (transformers or vllm)",
)
PRM_FAMILIES.register_lazy(
    "mean_logit",
    "reward_models.mean_logit:MeanLogitPRM",
    "the REBASE paper's readout: sigmoid(mean logit) at each step tag",
)
PRM_FAMILIES.register_lazy(
    "token_classify",
    "reward_models.token_classify:TokenClassifyPRM",
    "Qwen2.5-Math-PRM style: a 2-label token-classification head at step separators",
)
PRM_FAMILIES.register_lazy(
    "judge",
    "reward_models.judge:JudgePRM",
    "a generative judge asked per step: P(good) / (P(good) + P(bad)) of its next token",
)

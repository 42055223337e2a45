"""Process reward models: one file per PRM family (adapter), all declared in YAML.

Families register lazily (they import torch): `step_tag`, `mean_logit`, `token_classify`, `judge`.
A user's own PRM class registers with `@PRM_FAMILIES.register("my_family")`.
"""

from rebase.registry import PRM_FAMILIES

PRM_FAMILIES.register_lazy("step_tag", "reward_models.step_tag:make_step_tag")  # transformers or vllm
PRM_FAMILIES.register_lazy("mean_logit", "reward_models.mean_logit:MeanLogitPRM")
PRM_FAMILIES.register_lazy("token_classify", "reward_models.token_classify:TokenClassifyPRM")
PRM_FAMILIES.register_lazy("judge", "reward_models.judge:JudgePRM")

"""Tasks: what a dataset is to the rest of the system. Each dataset is one Task object (base.py)
registered in DATASETS, in a file of its own (gsm8k.py, hendrycks_math.py, aime.py, amc.py,
arith.py): its rows, problems, prompt defaults and answer rules (the families in rules.py).
datasets.py registers the built-ins and cuts the configured slice; prompts.py renders prompts;
grading.py answers extraction, grading and vote keys by dataset name.

Tasks sit just above the core, beside the backends, so that strategies can form candidates and
the evaluator can grade them through the same rules without importing each other.
"""

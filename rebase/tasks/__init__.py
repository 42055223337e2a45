"""Tasks: what a dataset is to the rest of the system. Loaders (datasets.py and arith.py), prompt
layouts (prompts.py) and answer extraction, grading and vote keys (grading.py).

Tasks sit just above the core, beside the backends, so that strategies can form candidates and
the evaluator can grade them through the same rules without importing each other.
"""

"""Training of the demo world: three `arith` policies and a step PRM, saved to rebase/demo/models/.

Not part of the installed package (the runtime only loads the saved models). Run from the
repository root:

    python -m scripts.train_demo [--out DIR] [--steps-scale F] [--only arith-s,arith-prm]

Modules: tokenizer.py (character-level tokenizer), train_policy.py (policy training, sampling,
greedy evaluation), train_prm.py (PRM data from policy samples, training, step-label AUC),
train.py (the entry point).
"""

"""The embedded demo world: the `arith` dataset's trained policies and step PRM.

Why: `rebase demo` must run end to end on a laptop CPU with no downloads, yet show the paper's
effects (accuracy rising with model size and with search budget; a smaller model with search
competing with a larger one at equal FLOPs). So the project ships three small Llama policies of
different sizes (arith-s, arith-m, arith-l) and a Math-Shepherd-style step PRM (arith-prm), all
trained from scratch on `eval/arith.py` problems by `rebase train-demo`, under models/.

Modules: tokenizer.py (character-level tokenizer), train_policy.py (policy training, sampling,
greedy evaluation), train_prm.py (PRM data from policy samples, training, step-label AUC),
train.py (the `rebase train-demo` entry point). Nothing is imported or trained at import time.
"""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"

"""The embedded demo world: the `arith` dataset's trained policies and step PRM, and its config.

Why: `rebase demo` must run end to end on a laptop CPU with no downloads, yet show the paper's
effects (accuracy rising with model size and with search budget; a smaller model with search
competing with a larger one at equal FLOPs). So the package ships four small Llama policies of
different sizes (arith-s, arith-m, arith-l, arith-xl) and a Math-Shepherd-style step PRM (arith-prm) under
models/, and the sweep that runs them, demo.yaml. The models were trained from scratch on
`rebase/tasks/arith.py` problems by `python -m scripts.train_demo` (a source checkout only: the
installed package carries only what running needs).
"""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEMO_CONFIG = Path(__file__).resolve().parent / "demo.yaml"

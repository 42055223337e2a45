"""`python -m scripts.train_demo`: the demo world's training entry point (see train.py)."""

import sys

from scripts.train_demo.train import main

sys.exit(main())

"""Developer scripts that live beside the packages and are not installed with them.

python -m scripts.train_demo      # retrain the demo world's models (from the repository root)
"""

"""rebase: inference-time compute search (REBASE, MCTS, sampling + voting) with an honest FLOP ledger.

The core package: problem/completion/tree types (`rebase.types`), the generation protocol
(`rebase.generator`), generation backends (`rebase.backends`), the FLOP ledger (`rebase.flops`),
config validation (`rebase.config`), the registry (`rebase.registry`) and the CLI (`rebase.cli`).
Nothing happens at import: heavy backends (torch, vllm, ray) load lazily through the registry.
"""

__version__ = "0.1.0"

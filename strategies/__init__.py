"""Search strategies (one file each) and the aggregators that pick a final answer.

Named strategies = search x aggregator: `greedy`, `majority`, `best_of_n`, `weighted_majority`
(N independent samples + that aggregator), `rebase` and `mcts` (tree search, weighted majority by
default), plus `beam_search`, `dvts` (diverse verifier tree search), `particle_filtering`, and the
adaptive-budget voters `adaptive_majority` and `adaptive_weighted_majority` (waves of samples until
the vote is decided). Importing this package registers them; heavy work happens only in `search`.
"""

from strategies import sampling  # noqa: F401  (registers greedy, majority, best_of_n, weighted_majority)
from strategies import rebase  # noqa: F401
from strategies import mcts  # noqa: F401
from strategies import beam  # noqa: F401
from strategies import adaptive  # noqa: F401  (adaptive_majority, adaptive_weighted_majority)
from strategies import dvts  # noqa: F401
from strategies import particle_filtering  # noqa: F401

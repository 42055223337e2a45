"""Error types that decide the CLI's exit code.

`BadInput` is anything the user can fix in a config, a data file or a command line: the CLI prints
its one-line message and exits 2, before anything is written. `RunFailure` is a failure during a run
(a backend or PRM fault): the CLI exits 1 after keeping every record already computed.
"""


class BadInput(ValueError):
    """A config, data file or argument is wrong; the message names the file, key or row."""


class RunFailure(RuntimeError):
    """Something failed while searching (backend, PRM); the message names the problem or node."""


class PRMError(RunFailure):
    """A PRM returned no score, NaN, or the wrong number of step scores for a path."""

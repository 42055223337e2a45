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


class SearchBug(RuntimeError):
    """A programming error inside a search (TypeError, KeyError, AttributeError, ...). Unlike a
    fault it is not retried or recorded per problem: it stops the sweep (exit 1), keeping what was
    written, with its traceback in DIR/errors.log."""

    def __init__(self, message: str, traceback_text: str = ""):
        super().__init__(message)
        self.traceback_text = traceback_text


def is_fault(e: BaseException) -> bool:
    """Whether `e` is a backend / PRM fault worth retrying and recording per problem: a RunFailure
    (PRMError included; backends wrap their errors so), an OS-level error (a reset connection, a
    timeout, a full disk) or running out of memory (torch's OutOfMemoryError included). Anything
    else raised while searching is a bug."""
    if isinstance(e, (RunFailure, OSError, MemoryError)):
        return True
    return type(e).__name__ in ("OutOfMemoryError", "EngineDeadError")

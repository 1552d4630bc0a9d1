__all__ = ["PrunetuneError"]

"""The one base of every expected failure: the command line prints its message in one line and exits 2.

No imports, so every package (the torch-free analysis included) can raise its own subclass."""


class PrunetuneError(Exception):
    """An expected failure whose message names the problem and the fix (bad input, an unreachable store)."""

"""The one error type for bad input data: a single line naming the file, the place and the fix."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad data. The message is one line: ``<file>: <row/field>: <what is wrong>; <what to do>``.

    A ``ValueError``, so the runner reports it as ``nac-bench: error: dataset (...): <message>``
    and exits with status 2.
    """

    def __init__(self, path: Path | str, where: str | None, problem: str, fix: str):
        self.path = str(path)
        self.where = where
        self.problem = problem
        self.fix = fix
        parts = [self.path] + ([where] if where else []) + [f"{problem}; {fix}"]
        super().__init__(" ".join(": ".join(parts).split()))

"""Bad input data: the one error type, and the CSV checks that raise it.

Every reader reports bad data as a :class:`DataError`, whose message is one line
``<file>: <row/field>: <what is wrong>; <what to do>``, never a traceback from inside pandas or
NumPy, and never lets a damaged row through as NaN.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


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


def read_csv(path: Path | str, fix: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)``; an empty, unparsable or truncated (gzip) file raises one :class:`DataError`.

    A missing file still raises ``FileNotFoundError``: callers say how to get it."""
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(path, None, "is empty (0 bytes or no rows)", fix) from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, zlib.error, ValueError) as err:
        raise DataError(path, None, f"cannot be read ({type(err).__name__}: {err})", fix) from None


def numeric_columns(
    frame: pd.DataFrame, columns: Sequence, path: Path | str, fix: str, first_line: int = 1
) -> np.ndarray:
    """``frame[columns]`` as float64 (rows, columns); a missing, non-numeric or infinite cell raises a
    :class:`DataError` naming its line (row ``i`` is line ``i + first_line``) and column.

    A row cut short (a truncated file) shows as missing cells at its end."""
    raw = frame[list(columns)]
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        cell = raw.iat[row, col]
        name = columns[col]
        if pd.isna(cell):
            problem = f"column {name} is empty (the row ends early or a value is missing: a truncated or damaged file)"
        else:
            problem = f"column {name} holds {str(cell)[:40]!r}, not a finite number"
        raise DataError(path, f"line {row + first_line}", problem, fix)
    return values

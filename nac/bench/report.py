"""Rows of a benchmark, the table it prints, and its ``results/`` files with provenance.

Every row is one figure: what was measured, at which shape, the median and spread, its target and
verdict, its ratio to the torch reference layers timed in the same run, and the CPU time other
processes used while it was measured. The Markdown file starts with the command, commit (``-dirty-``
plus a hash of uncommitted changes, see :func:`nac.harness.environment.git_commit`), date, torch
version, CPU model, thread count and device; the CSV repeats them in every row.
"""

from __future__ import annotations

import math
import os
import platform
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from nac.bench.load import BUSY_CORES


@dataclass
class Row:
    """One figure of the benchmark."""

    part: str  # reference | step | long | epoch
    what: str
    shape: str
    unit: str = "s"  # s | MiB
    median: float | None = None
    iqr: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0
    target: float | None = None  # upper bound
    result: str = "-"  # pass | fail (+ ' (busy)') | - | not run
    x_lstm: float | None = None  # median / the LSTM reference's median
    x_mha: float | None = None
    load_cores: float | None = None  # other processes' average CPU use while measuring
    note: str = ""

    def judge(self, verdicts: bool) -> None:
        """Set ``result`` from the median and the target (``-`` without verdicts or target); a verdict
        measured while other processes kept more than ``BUSY_CORES`` cores busy says ``(busy)``."""
        if self.median is None:
            self.result = "not run"
        elif verdicts and self.target is not None:
            self.result = "pass" if self.median <= self.target else "fail"
            if self.load_cores is not None and self.load_cores > BUSY_CORES:
                self.result += " (busy)"
        else:
            self.result = "-"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@dataclass
class Provenance:
    """Where the figures come from."""

    command: str
    commit: str
    date: str
    torch: str
    python: str
    cpu: str
    cpus: int
    threads: int
    device: str

    @classmethod
    def now(cls, prog: str, argv: list[str], threads: int, device: str) -> Provenance:
        import torch

        from nac.harness.environment import git_commit

        return cls(
            command=shlex.join(["python", *shlex.split(prog), *argv]),
            commit=git_commit(),
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            torch=torch.__version__,
            python=platform.python_version(),
            cpu=cpu_model(),
            cpus=os.cpu_count() or 0,
            threads=threads,
            device=device,
        )

    def lines(self) -> list[str]:
        return [
            f"command: `{self.command}`",
            f"commit: {self.commit}",
            f"date: {self.date}",
            f"machine: {self.cpu}, {self.cpus} CPUs; device {self.device}; torch {self.torch}, "
            f"python {self.python}; torch threads {self.threads}",
        ]


def number(value: float | None, unit: str = "") -> str:
    """3 significant figures without exponents (thousands with commas); ``-`` for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{float(f'{value:.3g}'):g}"
    if "e" in text:
        text = f"{value:.6f}".rstrip("0")
    return f"{text} {unit}".rstrip()


def table(rows: list[Row]) -> pd.DataFrame:
    """The printed table: one row per figure."""

    def spread(r: Row) -> str:
        if r.median is None or r.n < 2:
            return "-"
        return f"IQR {number(r.iqr)}, {number(r.low)}-{number(r.high)}"

    return pd.DataFrame(
        [
            {
                "figure": r.what,
                "shape": r.shape,
                "median": number(r.median, r.unit) if r.median is not None else "not run",
                "spread": spread(r),
                "n": r.n or "-",
                "target": f"<= {number(r.target, r.unit)}" if r.target is not None else "-",
                "result": r.result,
                "x LSTM": number(r.x_lstm),
                "x MHA": number(r.x_mha),
                "other load (cores)": number(r.load_cores),
            }
            for r in rows
        ]
    )


def markdown(rows: list[Row]) -> str:
    return table(rows).to_markdown(index=False, disable_numparse=True)


def notes(rows: list[Row]) -> list[str]:
    """One line per row that has a note (why it was not run, where its data came from)."""
    return [f"{r.what}: {r.note}" for r in rows if r.note]


@dataclass
class Report:
    """Everything a run writes: provenance, settings lines, rows, load line, closing lines."""

    provenance: Provenance
    settings: list[str]
    rows: list[Row] = field(default_factory=list)
    load: str = ""
    extra: list[str] = field(default_factory=list)

    def text(self, title: str) -> str:
        lines = [f"# {title}", ""]
        lines += [f"- {line}" for line in [*self.provenance.lines(), self.load]]
        lines += ["", *self.settings, "", markdown(self.rows), ""]
        if notes(self.rows):
            lines += ["Notes:", "", *[f"- {n}" for n in notes(self.rows)], ""]
        lines += self.extra
        return "\n".join(lines).rstrip() + "\n"

    def write(self, md_path: Path, title: str) -> tuple[Path, Path]:
        """Write ``md_path`` and the CSV beside it; returns both paths."""
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(self.text(title))
        csv_path = md_path.with_suffix(".csv")
        meta = {f"run_{k}": v for k, v in asdict(self.provenance).items()}
        pd.DataFrame([{**asdict(r), **meta} for r in self.rows]).to_csv(csv_path, index=False)
        return md_path, csv_path

"""Hydra callback: after a multirun, print and save the table of the sweep's records.

The table is :func:`nac.harness.tables.summary_table` (groups by settings and commit, mean ± sample
std, t interval, paper figure only where like for like), followed by its legend.

A sweep that ends early (Ctrl-C, SIGTERM, an error) never reaches ``on_multirun_end``; the command
line then calls :func:`write_partial_table`, which writes the table of the runs that finished as
``table.partial.md`` and ``table.partial.csv`` (the names say it is partial).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from nac.harness.records import load_records
from nac.harness.tables import LEGEND, records_frame, summary_table, to_markdown

log = logging.getLogger(__name__)
#: the sweep folder of the multirun in progress in this process (None when none is)
_active_sweep: Path | None = None


def write_sweep_table(sweep_dir: Path, partial_reason: str | None = None) -> Path | None:
    """Collect ``record.json`` of every job under ``sweep_dir`` (in job order) into ``table.md`` and
    ``table.csv`` (``table.partial.*`` with a first line giving ``partial_reason``); print it.
    Returns the Markdown file, or None when no job left a record."""
    files = sorted(
        sweep_dir.rglob("record.json"),
        key=lambda p: (int(p.parent.name) if p.parent.name.isdigit() else 1 << 30, str(p)),
    )
    table = summary_table(records_frame(load_records(files)))
    if table.empty:
        log.warning("no run records found under %s", sweep_dir)
        return None
    stem = "table" if partial_reason is None else "table.partial"
    markdown = f"{to_markdown(table)}\n\n{LEGEND}"
    if partial_reason is not None:
        markdown = (
            f"Partial table: the sweep was {partial_reason}; it holds the {len(files)} runs that had "
            f"started (see their status), runs that had not are missing.\n\n{markdown}"
        )
    out = sweep_dir / f"{stem}.md"
    out.write_text(markdown + "\n")
    table.to_csv(sweep_dir / f"{stem}.csv", index=False)
    print(f"\n{markdown}\n\nTable written to {out} (and .csv)")
    return out


def write_partial_table(reason: str) -> Path | None:
    """If a multirun of this process is in progress, write the partial table of what finished."""
    global _active_sweep
    sweep_dir, _active_sweep = _active_sweep, None
    if sweep_dir is None:
        return None
    try:
        return write_sweep_table(sweep_dir, partial_reason=reason)
    except Exception as err:  # the sweep's own error matters more than a table
        log.warning("could not write the partial table of %s: %s", sweep_dir, err)
        return None


class SweepTable(Callback):
    """Collects ``record.json`` of every job in the sweep folder into ``table.md`` and ``table.csv``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _active_sweep
        _active_sweep = Path(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _active_sweep
        _active_sweep = None
        write_sweep_table(Path(config.hydra.sweep.dir))

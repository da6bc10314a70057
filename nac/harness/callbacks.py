"""Hydra callback: after a multirun, print and save the table of the sweep's records."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from nac.harness.records import load_records
from nac.harness.tables import records_frame, summary_table, to_markdown

log = logging.getLogger(__name__)


class SweepTable(Callback):
    """Collects ``record.json`` of every job in the sweep folder into ``table.md`` and ``table.csv``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        files = sorted(sweep_dir.rglob("record.json"),
                       key=lambda p: (int(p.parent.name) if p.parent.name.isdigit() else 1 << 30, str(p)))
        records = load_records(files)  # in job order
        table = summary_table(records_frame(records))
        if table.empty:
            log.warning("no run records found under %s", sweep_dir)
            return
        markdown = to_markdown(table)
        (sweep_dir / "table.md").write_text(markdown + "\n")
        table.to_csv(sweep_dir / "table.csv", index=False)
        print(f"\n{markdown}\n\nTable written to {sweep_dir}/table.md (and .csv)")

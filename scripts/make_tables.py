"""Aggregate run records into a results table (CSV and Markdown), with paired comparisons.

    python scripts/make_tables.py                                   # every record under runs/records
    python scripts/make_tables.py --records runs/records/digits --name digits_clean
    python scripts/make_tables.py --dataset emnist --protocol clean --out-dir results
    python scripts/make_tables.py --dataset emnist --compare nac lstm --compare nac cfc

Groups: dataset x protocol x model x tag x settings (runs that differ only in seed or fold) x the
commit they ran (``--merge-commits`` pools commits); mean ± sample std (ddof 1) and a Student-t 95 %
interval over ok runs; single runs marked; incomplete groups (failed runs, missing paper folds)
marked in ``status``; the paper's NAC figure and the difference only where the group is like for
like, else ``vs paper`` says why (nac/harness/tables.py). ``--compare A B`` pairs the ok runs of
two models by seed (clean) or fold (paper) and writes the mean difference and its interval to
``<name>.paired.csv`` and below the table in ``<name>.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

from nac.harness.records import load_records
from nac.harness.tables import LEGEND, PAIRED_LEGEND, paired_comparison, records_frame, summary_table, to_markdown


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", nargs="+", default=["runs/records"], help="record folders or files")
    p.add_argument("--dataset", default=None)
    p.add_argument("--protocol", default=None)
    p.add_argument("--out-dir", default="results")
    p.add_argument("--name", default=None, help="file stem (default: from the filters, else 'summary')")
    p.add_argument(
        "--merge-commits",
        action="store_true",
        help="average runs of the same settings made with different code (default: one group per commit)",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("MODEL_A", "MODEL_B"),
        help="paired comparison A - B by seed (clean) or fold (paper); repeat for more pairs",
    )
    return p


def paired_tables(frame: pd.DataFrame, pairs: list[list[str]], merge_commits: bool) -> pd.DataFrame:
    """Every requested paired comparison, one table."""
    tables = [paired_comparison(frame, a, b, merge_commits=merge_commits) for a, b in pairs]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = [r for r in args.records if not Path(r).exists()]
    if missing:
        print(f"no records at {missing}: run some experiments first (records go to runs/records)", file=sys.stderr)
        return 2
    frame = records_frame(load_records(args.records))
    if args.dataset and not frame.empty:  # `bearings` also matches its per-test-set rows `bearings/<name>`
        frame = frame[(frame.dataset == args.dataset) | frame.dataset.str.startswith(args.dataset + "/")]
    if args.protocol and not frame.empty:
        frame = frame[frame.protocol == args.protocol]
    if frame.empty:
        print("no matching records", file=sys.stderr)
        return 2
    table = summary_table(frame, merge_commits=args.merge_commits)
    name = args.name or "_".join(filter(None, [args.dataset, args.protocol])) or "summary"
    out = Path(args.out_dir) / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    command = "python scripts/make_tables.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    markdown = f"Command: `{command.strip()}`\n\n{to_markdown(table)}\n\n{LEGEND}"
    written = [out, out.with_suffix(".md")]
    if args.compare:
        paired = paired_tables(frame, args.compare, args.merge_commits)
        paired.to_csv(out.with_suffix(".paired.csv"), index=False)
        written.append(out.with_suffix(".paired.csv"))
        body = to_markdown(paired) if not paired.empty else "(no runs of both models on the same data and settings)"
        markdown += f"\n\nPaired comparisons\n\n{body}\n\n{PAIRED_LEGEND}"
    out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown + "\n\nwrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

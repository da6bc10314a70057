"""Aggregate run records into a results table (CSV and Markdown).

    python scripts/make_tables.py                                   # every record under runs/records
    python scripts/make_tables.py --records runs/records/digits --name digits_clean
    python scripts/make_tables.py --dataset emnist --protocol clean --out-dir results

Groups: dataset x protocol x model x tag x settings (runs that differ only in seed or fold);
mean ± population std over ok runs; incomplete groups (failed runs, missing paper folds) are
marked in ``status``; the paper's NAC figure and the difference are shown where one exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from nac.harness.records import load_records  # noqa: E402
from nac.harness.tables import records_frame, summary_table, to_markdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", nargs="+", default=["runs/records"], help="record folders or files")
    p.add_argument("--dataset", default=None)
    p.add_argument("--protocol", default=None)
    p.add_argument("--out-dir", default="results")
    p.add_argument("--name", default=None, help="file stem (default: from the filters, else 'summary')")
    args = p.parse_args(argv)
    missing = [r for r in args.records if not Path(r).exists()]
    if missing:
        print(f"no records at {missing}: run some experiments first (records go to runs/records)", file=sys.stderr)
        return 2
    frame = records_frame(load_records(args.records))
    for column in ("dataset", "protocol"):
        if getattr(args, column):
            frame = frame[frame[column] == getattr(args, column)]
    if frame.empty:
        print("no matching records", file=sys.stderr)
        return 2
    table = summary_table(frame)
    name = args.name or "_".join(filter(None, [args.dataset, args.protocol])) or "summary"
    out = Path(args.out_dir) / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    markdown = to_markdown(table)
    out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown + f"\n\nwrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Raw PRONOSTIA bearing folder(s) -> feature CSV(s) in the NAC authors' format.

    python scripts/extract_bearing_features.py <raw>/Full_Test_Set/Bearing1_5 [more folders] \\
        --out <data_root>/bearings/features/pronostia

Writes ``<out>/<BearingX_Y>_features.csv`` (add ``--gzip`` for ``.csv.gz``) with columns Horizontal,
Vertical (JSON lists: energy, dominant frequency, spectral entropy, kurtosis, skewness, mean, std),
Time, Temperature (deg C), Degradation, RPM, Load: the files ``nac.data.bearings`` reads. Frames of
1,000 samples every 500 over the concatenated snapshots, as the published files; kurtosis, skewness,
mean, std and Time equal the published values, the spectral features, Temperature and Degradation are
defined differently (nac/data/bearing_features.py documents how). Accepts ',' and ';' separated files.
A folder without temp_*.csv files needs --temperature-fallback-c (deg C); a damaged raw file stops the
script with one line naming it (exit status 2). Each CSV is written to a temporary file, then renamed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nac.data.bearing_features import extract_bearing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="raw bearing folders holding acc_*.csv and temp_*.csv")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder, e.g. <data_root>/bearings/features/pronostia"
    )
    parser.add_argument("--gzip", action="store_true", help="write .csv.gz")
    parser.add_argument("--rpm", type=float, default=None, help="override the operating condition's speed")
    parser.add_argument("--load", type=float, default=None, help="override the operating condition's load (N)")
    parser.add_argument("--max-snapshots", type=int, default=None, help="only the first N snapshots (quick checks)")
    parser.add_argument(
        "--temperature-fallback-c",
        type=float,
        default=None,
        help="deg C written for a folder without temp_*.csv files (default: such a folder is an error)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in args.folders:
        try:
            frame = extract_bearing(
                folder,
                rpm=args.rpm,
                load=args.load,
                max_snapshots=args.max_snapshots,
                progress=not args.no_progress,
                temperature_fallback_c=args.temperature_fallback_c,
            )
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        target = args.out / f"{folder.name}_features.csv{'.gz' if args.gzip else ''}"
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # never a half-written CSV under --out
        frame.to_csv(partial, index=False, compression="gzip" if args.gzip else None)
        os.replace(partial, target)
        print(f"{folder.name}: {len(frame)} rows -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""The Time-only reference for the bearing benchmark: a linear regression on the Time input alone.

It reads the data exactly as the model runs do: the same builder with the shipped dataset config's
bearings, fallbacks and windows (``configs/dataset/bearings.yaml``; published files first, then
``bearings/extracted/``). Under the ``paper`` protocol (default): the pooled training rows
standardised together, 5 folds over rows (KFold, seed 42); each fold's line is scored on whole test
bearings standardised on their own rows. ``--protocol clean``: Time standardised with the training
bearings' scaler, one fit. Per test bearing it gives S (the asymmetric score summed over the bearing's
rows), S per row (S / rows), MSE and RMSE: mean, sample std (ddof 1) and Student-t 95 % interval over
the folds. ``--out results/x.csv`` also writes the table as CSV and Markdown (``x.md``), with the
command, commit and date.

    python scripts/bearing_time_reference.py --out results/bearings_time_only_paper.csv
    python scripts/bearing_time_reference.py --protocol clean --out results/bearings_time_only_clean.csv
    python scripts/bearing_time_reference.py --train Bearing1_4 Bearing1_7 \\
        --test pronostia=Bearing1_2 xjtu=Bearing1_1 hust=Bearing1  # substituted bearings
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from nac.data.bearings import LABEL_FALLBACKS, TIME_INDEX, build, describe_sources
from nac.harness.environment import git_commit
from nac.harness.metrics import MetricAccumulator
from nac.harness.tables import summarize

ROOT = Path(__file__).resolve().parents[1]
#: the shipped dataset config: its bearings, windows and label and temperature fallbacks (XJTU-SY) are used too
DATASET_CONFIG = ROOT / "configs" / "dataset" / "bearings.yaml"
#: figures per test bearing: (record key, column name)
FIGURES = (("score", "S"), ("score_per_row", "S/row"), ("mse", "MSE"), ("rmse", "RMSE"))


def arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    """Time column (standardised as the models see it) and label of every valid row of a split."""
    x, y, mask = dataset.x.numpy(), dataset.y.numpy(), dataset.mask.numpy()
    time = x[..., TIME_INDEX]
    if y.ndim == 1:  # one row per sample
        return time[:, 0].astype(np.float64), y.astype(np.float64)
    return time[mask].astype(np.float64), y[mask].astype(np.float64)


def fit_line(time: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(time, label, 1)
    return float(slope), float(intercept)


def figures(pred: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """S, S per row, MSE and RMSE of a prediction, as the harness computes them for the model runs."""
    accumulator = MetricAccumulator("regression")
    accumulator.update(torch.from_numpy(pred), torch.from_numpy(label))
    return accumulator.result()


def summary_frame(results: dict[str, list[dict]], meta_extra: dict) -> pd.DataFrame:
    """One row per test bearing: its rows, source, and mean / sample std / 95 % interval of each figure."""
    rows = []
    for name, runs in results.items():
        bearing = meta_extra["bearings"]["test"][name]
        row = {
            "test": name,
            "bearing": bearing,
            "source": meta_extra["bearing_sources"][bearing],
            "rows": meta_extra["rows"][bearing],
            "folds": len(runs),
        }
        for key, column in FIGURES:
            s = summarize([r[key] for r in runs])
            row.update(
                {
                    f"{column} mean": s.mean,
                    f"{column} std": s.std,
                    f"{column} 95% low": s.low,
                    f"{column} 95% high": s.high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if std is None or np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(table: pd.DataFrame, header: dict[str, str]) -> str:
    """The table as Markdown under a header naming command, commit, date, protocol and bearings."""
    lines = ["# Bearings: the Time-only reference", ""] + [f"- {key}: {value}" for key, value in header.items()]
    lines += [
        "",
        "Mean ± sample std (ddof 1) over the folds; S summed over a test bearing's rows, S/row = S / rows.",
        "",
        "| test | bearing | source | rows | S | S 95% CI | S/row | MSE | RMSE |",
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        interval = (
            "-"
            if r["S 95% low"] is None or pd.isna(r["S 95% low"])
            else f"[{r['S 95% low']:.3f}, {r['S 95% high']:.3f}]"
        )
        lines.append(
            f"| {r['test']} | {r['bearing']} | {r['source']} | {r['rows']} | {_cell(r['S mean'], r['S std'], 3)} "
            f"| {interval} | {_cell(r['S/row mean'], r['S/row std'], 6)} | {_cell(r['MSE mean'], r['MSE std'], 5)} "
            f"| {_cell(r['RMSE mean'], r['RMSE std'], 4)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--protocol", choices=("paper", "clean"), default="paper")
    parser.add_argument("--train", nargs="+", default=None, help="training bearings (default: the dataset config's)")
    parser.add_argument(
        "--val", nargs="+", default=None, help="clean only: validation bearings (default: the config's)"
    )
    parser.add_argument(
        "--test", nargs="+", default=None, metavar="NAME=BEARING", help="test bearings (default: the dataset config's)"
    )
    parser.add_argument(
        "--xjtu-label",
        choices=LABEL_FALLBACKS["xjtu"],
        default=None,
        help="label of the XJTU-SY files, which have none (default: the dataset config's)",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--limit", type=int, default=None, help="quick checks: rows per bearing (dataset.builder.limit)"
    )
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "cache")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the table to this .csv and beside it a .md (command, commit, date)",
    )
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix != ".csv":
        parser.error(f"--out {args.out}: name a .csv file (the Markdown goes beside it as .md)")
    shipped = OmegaConf.to_container(OmegaConf.load(DATASET_CONFIG).builder)
    label_fallback = dict(shipped["label_fallback"], **({"xjtu": args.xjtu_label} if args.xjtu_label else {}))
    tests = shipped["test_bearings"] if args.test is None else dict(item.split("=", 1) for item in args.test)
    options = dict(
        train_bearings=args.train or shipped["train_bearings"],
        val_bearings=args.val or shipped["val_bearings"],
        test_bearings=tests,
        window=shipped["window"],
        stride=shipped["stride"],
        limit=args.limit,
        label_fallback=label_fallback,
        temperature_fallback_c=shipped["temperature_fallback_c"],
    )
    folds = range(args.folds) if args.protocol == "paper" else [None]
    logging.getLogger("nac.data.bearings").setLevel(logging.ERROR)  # the sources are printed once below
    results: dict[str, list[dict]] = {}
    try:
        for fold in folds:
            protocol = {"name": args.protocol, "n_folds": args.folds, "fold": fold or 0, "split_seed": 42}
            splits = build(protocol, args.data_root, cache_dir=args.cache_dir, **options)
            slope, intercept = fit_line(*arrays(splits.train))
            for name, dataset in splits.tests.items():
                time, label = arrays(dataset)
                results.setdefault(name, []).append(figures(slope * time + intercept, label))
            print(
                f"fold {fold}: label = {slope:.4f} * time_std + {intercept:.4f}"
                if fold is not None
                else f"fit: label = {slope:.4f} * time_std + {intercept:.4f}"
            )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    extra = splits.meta.extra
    bearings = extra["bearings"]
    split = f"train {', '.join(bearings['train'])}" + (f"; val {', '.join(bearings['val'])}" if bearings["val"] else "")
    table = summary_frame(results, extra)
    print(f"protocol {args.protocol}; {split}; sources: {describe_sources(extra['bearing_sources'])}")
    print(f"{'test':<10} {'bearing':<22} {'rows':>6} {'S mean':>9} {'S std':>8} {'S/row':>10} {'MSE':>9} {'RMSE':>8}")
    for _, r in table.iterrows():
        std = 0.0 if r["S std"] is None or pd.isna(r["S std"]) else r["S std"]
        print(
            f"{r['test']:<10} {r['bearing']:<22} {r['rows']:>6} {r['S mean']:9.3f} {std:8.3f} "
            f"{r['S/row mean']:10.6f} {r['MSE mean']:9.5f} {r['RMSE mean']:8.4f}"
        )
    if args.out is not None:
        command = "python scripts/bearing_time_reference.py " + " ".join(
            shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
        )
        header = {
            "command": f"`{command.strip()}`",
            "commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "protocol": f"{args.protocol} ({len(list(folds))} fold(s)); {split}",
            "sources": describe_sources(extra["bearing_sources"]),
            "labels": f"XJTU-SY label_fallback {label_fallback['xjtu']}",
            "limit": str(args.limit),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.assign(**{k: v.strip("`") for k, v in header.items()}).to_csv(args.out, index=False)
        args.out.with_suffix(".md").write_text(markdown(table, header))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

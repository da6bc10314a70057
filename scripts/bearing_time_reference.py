#!/usr/bin/env python
"""The Time-only reference for the bearing benchmark: a linear regression on the Time input alone.

Under the ``paper`` protocol (default) it follows exactly the model runs' data: the same builder, the
pooled training rows standardised together, 5 folds over rows (KFold, seed 42); each fold's fit is
scored on whole test bearings standardised on their own rows. It prints S (the asymmetric score
summed over a bearing's rows), MSE and RMSE per test bearing as mean +- std (ddof 0) over the folds.
With ``--protocol clean`` Time is standardised with the training bearings' scaler instead (one fit).

    python scripts/bearing_time_reference.py                       # the paper's bearings (full data)
    python scripts/bearing_time_reference.py --train Bearing1_4 Bearing1_7 \\
        --test pronostia=Bearing1_2 xjtu=Bearing1_1 hust=Bearing1  # the shared dev copy
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nac.data.bearings import TIME_INDEX, build  # noqa: E402
from nac.harness.metrics import MetricAccumulator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the shipped dataset config, whose label and temperature fallbacks (XJTU-SY) the reference uses too
DATASET_CONFIG = ROOT / "configs" / "dataset" / "bearings.yaml"


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
    """S, MSE and RMSE of a prediction, as the harness computes them for the model runs."""
    accumulator = MetricAccumulator("regression")
    accumulator.update(torch.from_numpy(pred), torch.from_numpy(label))
    return accumulator.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--protocol", choices=("paper", "clean"), default="paper")
    parser.add_argument("--train", nargs="+", default=None, help="training bearings (default: the paper's)")
    parser.add_argument("--val", nargs="+", default=None, help="clean only: validation bearings")
    parser.add_argument("--test", nargs="+", default=None, metavar="NAME=BEARING", help="test bearings (default: the paper's)")
    parser.add_argument("--xjtu-label", choices=("linear", "ode"), default=None,
                        help="label of the XJTU-SY files, which have none (default: the dataset config's)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "cache")
    args = parser.parse_args(argv)
    tests = None if args.test is None else dict(item.split("=", 1) for item in args.test)
    shipped = OmegaConf.to_container(OmegaConf.load(DATASET_CONFIG).builder)
    label_fallback = dict(shipped["label_fallback"], **({"xjtu": args.xjtu_label} if args.xjtu_label else {}))
    options = dict(train_bearings=args.train, val_bearings=args.val, test_bearings=tests,
                   label_fallback=label_fallback, temperature_fallback_c=shipped["temperature_fallback_c"])
    folds = range(args.folds) if args.protocol == "paper" else [None]
    results: dict[str, list[dict]] = {}
    try:
        for fold in folds:
            protocol = {"name": args.protocol, "n_folds": args.folds, "fold": fold or 0, "split_seed": 42}
            splits = build(protocol, args.data_root, cache_dir=args.cache_dir, **options)
            slope, intercept = fit_line(*arrays(splits.train))
            for name, dataset in splits.tests.items():
                time, label = arrays(dataset)
                results.setdefault(name, []).append(figures(slope * time + intercept, label))
            print(f"fold {fold}: label = {slope:.4f} * time_std + {intercept:.4f}" if fold is not None
                  else f"fit: label = {slope:.4f} * time_std + {intercept:.4f}")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bearings = splits.meta.extra["bearings"]
    print(f"protocol {args.protocol}; train {bearings['train']}" + (f", val {bearings['val']}" if bearings["val"] else ""))
    print(f"{'test':<10} {'bearing':<22} {'S mean':>9} {'S std':>8} {'MSE':>9} {'RMSE':>8}")
    for name, rows in results.items():
        s = np.array([r["score"] for r in rows])
        mse = np.array([r["mse"] for r in rows])
        rmse = np.array([r["rmse"] for r in rows])
        print(f"{name:<10} {bearings['test'][name]:<22} {s.mean():9.3f} {s.std():8.3f} {mse.mean():9.5f} {rmse.mean():8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Prediction-vs-truth figures from ``<record stem>.predictions.npz`` files (nac/harness/predictions.py).

One PNG per test set name (``test``, or the bearings' named sets), one panel per file holding that
set, panels sorted by dataset, tag (else C-MAPSS subset), model and seed. Order of the samples on the
x axis: ``truth`` (sorted by the true value: C-MAPSS test engines by true RUL), ``rows`` (the file's
order: a bearing's rows over its run), or ``auto`` (``truth`` for C-MAPSS, ``rows`` otherwise). Each
panel's title gives the run and the RMSE / NASA score recomputed from the file. Drawn with Agg's
canvas (no display needed). CLI: ``scripts/plot_predictions.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nac.harness.predictions import SUFFIX, SetPredictions, read_predictions, regression_metrics

ORDERS = ("auto", "truth", "rows")


def sample_order(info: dict, data: SetPredictions, order: str = "auto") -> np.ndarray:
    """Indices that put the samples in plotting order (see the module docstring)."""
    if order not in ORDERS:
        raise ValueError(f"order={order!r} is not valid; use one of {', '.join(ORDERS)}")
    if order == "auto":
        order = "truth" if info.get("dataset") == "cmapss" else "rows"
    return np.argsort(data.true, kind="stable") if order == "truth" else np.arange(len(data.true))


def _title(info: dict, name: str, data: SetPredictions) -> str:
    label = info.get("tag") or info.get("subset")  # C-MAPSS runs name their subset
    run = " ".join(str(p) for p in (info.get("model"), label, f"seed {info.get('seed')}") if p)
    if info.get("task") == "classification":
        return f"{run}, {name}: accuracy {float(np.mean(data.pred == data.true)):.3f}"
    metrics = regression_metrics(data.pred, data.true)
    return f"{run}, {name}: RMSE {metrics['rmse']:.2f}, score {metrics['score']:.4g} (n={len(data.true)})"


def figure_for(name: str, panels: Sequence[tuple[dict, SetPredictions]], order: str = "auto") -> Figure:
    """One figure for test set ``name``: a panel per (info, predictions), truth as a line, predictions as dots."""
    fig = Figure(figsize=(10, 2.8 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (info, data) in zip(axes, panels):
        idx = sample_order(info, data, order)
        steps = np.arange(len(idx))
        by_truth = order == "truth" or (order == "auto" and info.get("dataset") == "cmapss")
        ax.plot(steps, data.true[idx], color="black", linewidth=1.5, label="truth")
        ax.plot(steps, data.pred[idx], ".", color="tab:red", markersize=4, label="prediction")
        ax.set_title(_title(info, name, data), fontsize=9)
        what = "test engines, sorted by true RUL" if info.get("dataset") == "cmapss" else "samples"
        ax.set_xlabel(f"{what}" if by_truth else "row (file order)")
        ax.set_ylabel("RUL (cycles)" if info.get("dataset") == "cmapss" else "target")
        ax.legend(loc="upper left", fontsize=8)
    return fig


def overlay(ax, name: str, panels: Sequence[tuple[dict, SetPredictions]], order: str = "auto") -> None:
    """Several runs' predictions of test set ``name`` on one axis: each run's predictions as dots in its own
    colour, labelled with its model and the RMSE / score recomputed from its file, and the first run's truth as
    a line on top (runs on one test set share it)."""
    for i, (info, data) in enumerate(panels):
        idx = sample_order(info, data, order)
        metrics = regression_metrics(data.pred, data.true)
        ax.plot(
            np.arange(len(idx)),
            data.pred[idx],
            ".",
            color=f"C{i}",
            markersize=2,
            alpha=0.5,
            label=f"{info.get('model')}: RMSE {metrics['rmse']:.3f}, S {metrics['score']:.4g}",
        )
    if panels:
        info, data = panels[0]
        idx = sample_order(info, data, order)
        ax.plot(np.arange(len(idx)), data.true[idx], color="black", linewidth=1.2, label=f"truth ({name})")
        ax.legend(loc="upper left", fontsize=7, markerscale=3)


def collect(paths: Sequence[Path | str]) -> list[tuple[Path, dict, dict[str, SetPredictions]]]:
    """Every predictions file among ``paths`` (folders searched for ``*.predictions.npz``), read and sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.rglob(f"*{SUFFIX}"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist; give <record stem>{SUFFIX} files or folders holding them")
    if not files:
        raise FileNotFoundError(
            f"no *{SUFFIX} file in {[str(p) for p in paths]}; runs write them with trainer.save_predictions=true"
        )
    loaded = [(file, *read_predictions(file)) for file in files]

    def key(item):
        meta = item[1]
        fields = (meta.get("dataset"), meta.get("tag") or meta.get("subset"), meta.get("model"), meta.get("seed"))
        return (*map(str, fields), str(item[0]))

    return sorted(loaded, key=key)


def plot_predictions(
    paths: Sequence[Path | str],
    out_dir: Path | str,
    name: str = "predictions",
    order: str = "auto",
    sets: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<name>_<set>.png`` for each test set; returns the files written."""
    loaded = collect(paths)
    names = list(sets) if sets else list(dict.fromkeys(n for _, _, found in loaded for n in found))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for set_name in names:
        panels = [(info, found[set_name]) for _, info, found in loaded if set_name in found]
        if not panels:
            raise ValueError(
                f"no file holds test set {set_name!r}; they hold {sorted({n for _, _, found in loaded for n in found})}"
            )
        target = out_dir / f"{name}_{set_name}.png"
        figure_for(set_name, panels, order).savefig(target, dpi=110)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """CLI (scripts/plot_predictions.py); exit 2 with one line for bad input."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", help=f"<record stem>{SUFFIX} files, or folders searched for them")
    parser.add_argument("--out", default=".", help="folder for the PNGs (default: .)")
    parser.add_argument("--name", default="predictions", help="file name prefix: <name>_<set>.png")
    parser.add_argument(
        "--order",
        choices=ORDERS,
        default="auto",
        help="x axis: truth (sorted by true value), rows (file order), auto (truth for C-MAPSS)",
    )
    parser.add_argument("--set", action="append", dest="sets", help="only this test set (repeatable)")
    args = parser.parse_args(argv)
    try:
        written = plot_predictions(args.paths, args.out, args.name, args.order, args.sets)
    except (FileNotFoundError, ValueError) as err:
        print(f"plot_predictions: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0

"""The NAC paper's efficiency protocol for every model: runtime, throughput and peak memory.

Protocol (the authors' RunTime_exp/run_time.py): batch 1, a sequence of 1,024 steps of 64
features, hidden size 64, 4 heads for attention models; one warm-up forward pass, then 10 timed
forward passes (no gradients). Printed per model: mean and population std of the seconds per
pass, throughput (sequences/s and steps/s), parameter count, and peak memory.

Memory is named by how it was measured. Each model runs in a fresh process (nac.bench.fresh calls
nac.harness.efficiency.measure_point), because a process's peak RSS is a lifetime high-water mark:
on CPU the mark is reset through ``/proc/self/clear_refs`` after the model and input are built,
so ``peak MB`` is the process's peak RSS during the passes (torch itself included) and
``increment MB`` is that peak minus the RSS just before them. On CUDA, ``peak MB`` is
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

    python scripts/bench_efficiency.py                        # every model in configs/model/
    python scripts/bench_efficiency.py --models nac cfc transformer --out results/efficiency.csv
    python scripts/bench_efficiency.py --device cuda
    python scripts/bench_efficiency.py --sweep length --lengths 256 1024 4096 16384 --out results/scaling.csv
    python scripts/bench_efficiency.py --sweep batch --batches 1 8 32 --mode train
    python scripts/bench_efficiency.py --suite results/efficiency   # all of it, one command

``--suite DIR`` runs everything in one command: the paper's protocol, then length and batch
sweeps, each for inference and for a training step, writing ``DIR/protocol.*``,
``DIR/length_inference.*``, ``DIR/length_train.*``, ``DIR/batch_inference.*`` and
``DIR/batch_train.*`` (tables, slopes and plots); other options (models, lengths, batches,
repeats, device, budgets) apply to every part.

Scaling sweeps (``--sweep length|batch``) time inference or, with ``--mode train``, a training
step (forward, a linear head, MSE loss, backward, Adam step), write the table, fit per model the
log-log slope of time and of memory increment against the swept variable (1 = linear, 2 =
quadratic), and plot both on log-log axes (PNG beside the CSV). A model stops at the first point
that fails, takes over ``--max-seconds`` per pass, or whose memory, extrapolated from its last two
points, would pass ``--max-memory-mb``: the remaining points are listed as skipped, with the reason.

Timings are only comparable on an idle machine: the last line reports the CPU time other
processes used meanwhile and warns when it was not idle.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nac.bench.fresh import call_fresh
from nac.bench.load import ForeignLoad
from nac.harness.efficiency import model_names


def spawn(model: str, args: argparse.Namespace, length: int, batch: int) -> dict:
    """Measure one (model, length, batch) point in a fresh process (nac.bench.fresh)."""
    base = {"model": model, "mode": args.mode, "length": length, "batch": batch}
    done = call_fresh(
        "nac.harness.efficiency:measure_point",
        dict(
            model=model,
            mode=args.mode,
            length=length,
            batch=batch,
            features=args.features,
            width=args.width,
            heads=args.heads,
            warmup=args.warmup,
            repeats=args.repeats,
            device=args.device,
        ),
        timeout=args.timeout,
    )
    result = done.result()
    if result is not None:
        return result
    if done.returncode is None:
        return {**base, "status": f"timeout after {args.timeout} s"}
    return {**base, "status": f"failed: {done.why()}"}


def skip_reason(done: list[dict], size: int, key: str, args: argparse.Namespace) -> str | None:
    """Why a model should not attempt the next point of a sweep, or None."""
    if not done:
        return None
    last = done[-1]
    if last.get("status") != "ok":
        return "skipped: a smaller point was skipped or did not finish"
    if last["mean_s"] > args.max_seconds:
        return f"skipped: {last[key]} already took {last['mean_s']:.1f} s > --max-seconds {args.max_seconds}"
    slope = 2.0  # assume quadratic growth until two points tell otherwise
    if len(done) >= 2 and done[-2].get("status") == "ok" and done[-2]["increment_mb"] > 0 and last["increment_mb"] > 0:
        slope = max(
            1.0, math.log(last["increment_mb"] / done[-2]["increment_mb"]) / math.log(last[key] / done[-2][key])
        )
    predicted = max(last["increment_mb"], 1.0) * (size / last[key]) ** slope
    if predicted > args.max_memory_mb:
        return f"skipped: predicted {predicted:.0f} MB > --max-memory-mb {args.max_memory_mb}"
    return None


def sweep_points(args: argparse.Namespace) -> tuple[str, list[tuple[int, int]]]:
    if args.sweep == "length":
        return "length", [(length, args.batch) for length in args.lengths]
    if args.sweep == "batch":
        return "batch", [(args.length, batch) for batch in args.batches]
    return "length", [(args.length, args.batch)]


def fit_slopes(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per model, the log-log slope of time and of memory increment against ``key`` (ok points)."""
    rows = []
    for model, group in table[table.status == "ok"].groupby("model", sort=False):
        if group[key].nunique() < 2:
            continue
        logs = np.log(group[key].astype(float))
        row = {
            "model": model,
            "points": len(group),
            f"{key} range": f"{group[key].min()}-{group[key].max()}",
            "time slope": float(np.polyfit(logs, np.log(group.mean_s.astype(float)), 1)[0]),
        }
        increments = group.increment_mb.astype(float).clip(lower=1e-3)
        row["memory slope"] = float(np.polyfit(logs, np.log(increments), 1)[0])
        rows.append(row)
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, key: str, slopes: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = table[table.status == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    slope_of = slopes.set_index("model") if not slopes.empty else pd.DataFrame()
    models = [m for m, g in ok.groupby("model", sort=False) if g[key].nunique() >= 2]
    colors = plt.cm.tab20(np.linspace(0, 1, max(len(models), 1)))
    styles = ["-", "--", "-.", ":"]
    for i, model in enumerate(models):
        group = ok[ok.model == model]
        look = {"color": colors[i], "linestyle": styles[i % len(styles)], "marker": "o", "markersize": 3}
        s_time = slope_of.loc[model, "time slope"] if model in slope_of.index else float("nan")
        s_mem = slope_of.loc[model, "memory slope"] if model in slope_of.index else float("nan")
        axes[0].plot(group[key], group.mean_s, label=f"{model} ({s_time:.2f})", **look)
        axes[1].plot(group[key], group.increment_mb.clip(lower=1e-3), label=f"{model} ({s_mem:.2f})", **look)
    for ax, ylabel in zip(axes, ("seconds per pass", "memory increment (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, title="model (log-log slope)", title_fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None, help="model config names (default: all in configs/model)")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--width", type=int, default=64, help="hidden size (dataset.width)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (dataset.heads)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--mode",
        choices=["inference", "train"],
        default="inference",
        help="time forward passes (no grad) or training steps (forward, backward, Adam)",
    )
    p.add_argument("--sweep", choices=["none", "length", "batch"], default="none")
    p.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--max-seconds", type=float, default=20.0, help="stop a model's sweep after a slower point")
    p.add_argument("--max-memory-mb", type=float, default=12000.0, help="skip points predicted to need more")
    p.add_argument("--timeout", type=int, default=900, help="seconds per model before it is reported as timed out")
    p.add_argument("--out", default=None, help="write the table to this CSV (and a .md beside it)")
    p.add_argument(
        "--suite", default=None, metavar="DIR", help="run the protocol and all sweeps (inference and train) into DIR"
    )
    return p.parse_args(argv)


SUITE = (
    ("protocol", ["--sweep", "none", "--mode", "inference"]),
    ("length_inference", ["--sweep", "length", "--mode", "inference"]),
    ("length_train", ["--sweep", "length", "--mode", "train"]),
    ("batch_inference", ["--sweep", "batch", "--mode", "inference"]),
    ("batch_train", ["--sweep", "batch", "--mode", "train"]),
)


def run_suite(argv: list[str], out_dir: str) -> int:
    """Every part of the suite, each as if called on its own with ``--out DIR/<part>.csv``."""
    base = []
    skip = False
    for item in argv:  # drop --suite DIR, --sweep X, --mode X, --out X from the shared options
        if skip:
            skip = False
        elif item in ("--suite", "--sweep", "--mode", "--out"):
            skip = True
        else:
            base.append(item)
    status = 0
    for name, extra in SUITE:
        print(f"\n===== {name} =====", flush=True)
        status |= main([*base, *extra, "--out", str(Path(out_dir) / f"{name}.csv")])
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.suite:
        return run_suite(argv, args.suite)
    models = args.models or model_names()
    unknown = sorted(set(models) - set(model_names()))
    if unknown:
        print(f"unknown model(s) {unknown}; choose from {model_names()}", file=sys.stderr)
        return 2
    shape = {
        "none": f"batch {args.batch}, length {args.length}",
        "length": f"batch {args.batch}, lengths {args.lengths}",
        "batch": f"batches {args.batches}, length {args.length}",
    }[args.sweep]
    print(
        f"efficiency ({args.mode}, sweep {args.sweep}): {shape}, {args.features} features, width "
        f"{args.width}, {args.heads} heads; {args.warmup} warm-up + {args.repeats} timed "
        f"{'training steps' if args.mode == 'train' else 'forward passes, no grad'}; "
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        flush=True,
    )
    key, points = sweep_points(args)
    load = ForeignLoad()
    rows = []
    for model in models:
        done: list[dict] = []
        for length, batch in points:
            size = length if key == "length" else batch
            reason = skip_reason(done, size, key, args)
            row = (
                {"model": model, "mode": args.mode, "length": length, "batch": batch, "status": reason}
                if reason
                else spawn(model, args, length, batch)
            )
            done.append(row)
            rows.append(row)
            shown = f"{row['mean_s']:.4f} s" if row.get("status") == "ok" else row["status"]
            print(f"  {model:15s} length {length:>6} batch {batch:>4}: {shown}", flush=True)
    raw = pd.DataFrame(rows)
    columns = {
        "model": "model",
        "mode": "mode",
        "length": "length",
        "batch": "batch",
        "params": "params",
        "mean_s": "mean s",
        "std_s": "std s",
        "seq_per_s": "seq/s",
        "steps_per_s": "steps/s",
        "peak_mb": "peak MB",
        "increment_mb": "increment MB",
        "memory_method": "memory",
        "status": "status",
    }
    table = raw.reindex(columns=list(columns)).rename(columns=columns)
    markdown = table.to_markdown(index=False, floatfmt=".4g")
    report = load.report()
    print("\n" + markdown + "\n\n" + report)
    slopes = fit_slopes(raw.reindex(columns=list(columns)), key) if args.sweep != "none" else pd.DataFrame()
    if not slopes.empty:
        print(
            "\nlog-log slopes against "
            + key
            + " (1 = linear, 2 = quadratic):\n"
            + slopes.to_markdown(index=False, floatfmt=".2f")
        )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        text = markdown + "\n"
        if not slopes.empty:
            slopes.to_csv(out.with_name(out.stem + "_slopes.csv"), index=False)
            text += "\nlog-log slopes against " + key + ":\n\n" + slopes.to_markdown(index=False, floatfmt=".2f") + "\n"
            title = (
                f"{args.mode} on {args.device}: batch {args.batch if key == 'length' else 'swept'}, "
                f"length {'swept' if key == 'length' else args.length}, {args.features} features, width "
                f"{args.width}; memory = peak minus pre-pass ({raw.memory_method.dropna().iloc[0]})"
            )
            plot(raw, key, slopes, out.with_suffix(".png"), title)
        out.with_suffix(".md").write_text(text + "\n" + report + "\n")
        print(f"wrote {out} (+ .md" + (", _slopes.csv, .png" if not slopes.empty else "") + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

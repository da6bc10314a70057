"""The NAC paper's efficiency protocol for every model: runtime, throughput and peak memory.

Protocol (the authors' RunTime_exp/run_time.py): batch 1, a sequence of 1,024 steps of 64
features, hidden size 64, 4 heads for attention models; one warm-up forward pass, then 10 timed
forward passes (no gradients). Printed per model: mean and population std of the seconds per
pass, throughput (sequences/s and steps/s), parameter count, and peak memory.

Memory is named by how it was measured. Each model runs in a fresh process (this script with
the hidden ``--point`` argument), because a process's peak RSS is a lifetime high-water mark:
on CPU the mark is reset through ``/proc/self/clear_refs`` after the model and input are built,
so ``peak MB`` is the process's peak RSS during the passes (torch itself included) and
``increment MB`` is that peak minus the RSS just before them. On CUDA, ``peak MB`` is
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

    python scripts/bench_efficiency.py                        # every model in configs/model/
    python scripts/bench_efficiency.py --models nac cfc transformer --out results/efficiency.csv
    python scripts/bench_efficiency.py --device cuda

Timings are only comparable on an idle machine: the last line reports the CPU time other
processes used meanwhile and warns when it was not idle.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from nac.harness.efficiency import ForeignLoad, build_sequence_model, mean_std, model_names, time_forward  # noqa: E402
from nac.harness.memory import reset_peak_rss, status_kib  # noqa: E402
from nac.models.predictor import count_parameters  # noqa: E402

POINT_MARKER = "BENCH_POINT "


def measure(args: argparse.Namespace) -> dict:
    """One model, in this (fresh) process: build, warm up, time, read peak memory."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_sequence_model(args.model, args.features, args.width, args.heads).to(device)
    x = torch.randn(args.batch, args.length, args.features, device=device)
    t = torch.ones(args.batch, args.length, device=device)
    row = {"model": args.model, "params": count_parameters(model)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
        method = "cuda_max_memory_allocated"
    else:
        method = "cpu_peak_rss_during_passes" if reset_peak_rss() else "cpu_peak_rss_process_lifetime"
        baseline = (status_kib("VmRSS") or 0) / 1024
    times = time_forward(model, x, t, warmup=args.warmup, repeats=args.repeats)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else (status_kib("VmHWM") or 0) / 1024)
    mean, std = mean_std(times)
    row.update(mean_s=mean, std_s=std, seq_per_s=args.batch / mean, steps_per_s=args.batch * args.length / mean,
               peak_mb=peak, increment_mb=peak - baseline, memory_method=method, status="ok")
    return row


def spawn(model: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--point", "--models", model, "--length", str(args.length),
           "--batch", str(args.batch), "--features", str(args.features), "--width", str(args.width),
           "--heads", str(args.heads), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
           "--device", args.device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"model": model, "status": f"timeout after {args.timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(POINT_MARKER):
            return json.loads(line[len(POINT_MARKER):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": model, "status": f"failed: {tail}"}


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
    p.add_argument("--timeout", type=int, default=900, help="seconds per model before it is reported as timed out")
    p.add_argument("--out", default=None, help="write the table to this CSV (and a .md beside it)")
    p.add_argument("--point", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.point:
        args.model = args.models[0]
        print(POINT_MARKER + json.dumps(measure(args)), flush=True)
        return 0
    models = args.models or model_names()
    unknown = sorted(set(models) - set(model_names()))
    if unknown:
        print(f"unknown model(s) {unknown}; choose from {model_names()}", file=sys.stderr)
        return 2
    print(f"efficiency protocol: batch {args.batch}, length {args.length}, {args.features} features, width "
          f"{args.width}, {args.heads} heads; {args.warmup} warm-up + {args.repeats} timed forward passes, no grad; "
          f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    load = ForeignLoad()
    rows = []
    for model in models:
        row = spawn(model, args)
        rows.append(row)
        shown = f"{row['mean_s']:.4f} s" if row.get("status") == "ok" else row["status"]
        print(f"  {model:15s} {shown}", flush=True)
    table = pd.DataFrame(rows)
    columns = {"model": "model", "params": "params", "mean_s": "mean s", "std_s": "std s",
               "seq_per_s": "seq/s", "steps_per_s": "steps/s", "peak_mb": "peak MB",
               "increment_mb": "increment MB", "memory_method": "memory", "status": "status"}
    table = table.reindex(columns=list(columns)).rename(columns=columns)
    markdown = table.to_markdown(index=False, floatfmt=".4g")
    print("\n" + markdown + "\n\n" + load.report())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        out.with_suffix(".md").write_text(markdown + "\n")
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

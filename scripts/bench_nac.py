"""Benchmark of the NAC layer: memory growth with sequence length, and training-step speed.

This script prints figures; it is not a test. Run it from the repository root::

    . .venv/bin/activate
    python scripts/bench_nac.py                       # both parts, CPU
    python scripts/bench_nac.py --part memory --lengths 1024 4096 --variants paper
    python scripts/bench_nac.py --part speed --out speed.csv
    python scripts/bench_nac.py --device cuda         # GPU memory / timings

Part 1, MEMORY (batch 1, 64 input features, d_model 64, 4 heads, topk 8, mode exact):
one forward + backward (loss = output.sum()) per sequence length T, each in a fresh
subprocess (this script with the hidden ``--point`` argument), because peak RSS is a
high-water mark of the whole process. In the child, after building the layer and input:

* on CPU, the peak-RSS mark is reset by writing ``5`` to ``/proc/self/clear_refs`` (Linux),
  so the import spike does not count; if that is not possible the mark is the process
  lifetime one and the output says so;
* ``baseline`` is VmRSS read right before the forward;
* ``peak RSS`` is VmHWM read after the backward;
* ``increment`` = peak - baseline: the memory the forward + backward needed;
* ``increment per 1k steps`` = increment / (T / 1000);
* ``time fwd+bwd`` is one cold forward + backward (first call in the process);
* per variant, the log-log slope of increment vs T (numpy.polyfit on the logs):
  slope ~1 means the memory grows linearly with T, ~2 quadratically. A T-independent part of
  the increment (workspace, allocator) pulls this slope below 1 over a short sweep, so the
  slope over the last doubling and an affine fit (fixed MiB + MiB per 1k steps) are printed too.

On ``--device cuda`` the same is measured with ``torch.cuda.max_memory_allocated`` after
``torch.cuda.reset_peak_memory_stats`` (baseline: ``torch.cuda.memory_allocated``).

Part 2, SPEED (the paper's E-MNIST settings): batch 32, T steps of 64 features, d_model 64,
16 heads, topk 10, sparsity 0.7, mode exact; a training step is forward, a Linear(64, 10) head,
cross-entropy, backward and an Adam step. 2 warm-up steps, then 10 timed steps
(time.perf_counter); mean and std seconds per step, next to the reference time of the
authors' TensorFlow layer on the same 2-core machine, the speed-up (reference / mean) and the
targets (official >= 10x at T = 11 and 256, paper >= 5x at T = 256) with PASS/FAIL.

Torch's thread count is left at its default (printed). Everything is seeded with 0.
Each part ends with a ``machine load`` line: the CPU time other processes used meanwhile
(/proc/stat minus this process tree). If it warns, the machine was shared and the timings
(speed especially: with 2 threads on 2 cores each parallel op waits for a descheduled thread)
are inflated; re-run on an idle machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from nac.harness.efficiency import ForeignLoad  # noqa: E402
from nac.harness.memory import reset_peak_rss, status_kib  # noqa: E402

POINT_MARKER = "BENCH_NAC_POINT "
MEMORY_LENGTHS = [1024, 2048, 4096, 8192, 16384]
SPEED_LENGTHS = [11, 256]
VARIANTS = ["paper", "official"]

# The authors' TensorFlow NAC layer, one training step with the SPEED settings.
TF_REFERENCE_S = {11: 0.30, 256: 9.0}
TF_PROVENANCE = ("authors' TensorFlow layer, TensorFlow 2.21 CPU graph mode, on this 2-core machine, "
                 "measured by the project lead")
# (variant, T) -> required speed-up over the TF reference
TARGETS = {("official", 11): 10.0, ("official", 256): 10.0, ("paper", 256): 5.0}

MEMORY_CFG = dict(batch=1, input_dim=64, d_model=64, num_heads=4, topk=8, mode="exact")
SPEED_CFG = dict(batch=32, input_dim=64, d_model=64, num_heads=16, topk=10, sparsity=0.7,
                 mode="exact", classes=10, warmup=2, steps=10)



# ---------------------------------------------------------------------------- helpers
def lifetime_peak_rss_mib() -> float:
    """VmHWM, or ru_maxrss where /proc is missing (both process-lifetime peaks)."""
    hwm = status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024




def sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def seed_all(seed: int = 0) -> None:
    import torch
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Plain fixed-width table; columns are (key, header)."""
    cells = [[str(r.get(k, "-")) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, (_, h) in enumerate(columns)]
    print(" | ".join(h.rjust(w) for (_, h), w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.rjust(w) for v, w in zip(c, widths)))


# ---------------------------------------------------------------------------- memory: child
def build_memory_point(variant: str, length: int, device: str):
    import torch
    from nac.layers import NeuronalAttentionCircuit
    seed_all(0)
    layer = NeuronalAttentionCircuit(MEMORY_CFG["input_dim"], MEMORY_CFG["d_model"], MEMORY_CFG["num_heads"],
                                     variant=variant, topk=MEMORY_CFG["topk"], mode=MEMORY_CFG["mode"]).to(device)
    x = torch.randn(MEMORY_CFG["batch"], length, MEMORY_CFG["input_dim"], device=device)
    return layer, x


def run_memory_point(variant: str, length: int, device: str) -> dict[str, Any]:
    """One forward + backward in this (fresh) process; returns the measured figures."""
    import torch
    layer, x = build_memory_point(variant, length, device)
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        method = "cuda max_memory_allocated after reset_peak_memory_stats"
        baseline = torch.cuda.memory_allocated() / 2**20
    else:
        reset_ok = reset_peak_rss()
        method = ("cpu VmHWM reset via /proc/self/clear_refs=5" if reset_ok
                  else "cpu VmHWM process lifetime (clear_refs reset not available)")
        baseline = (status_kib("VmRSS") or 0) / 1024

    sync(device)
    start = time.perf_counter()
    out = layer(x)
    out.sum().backward()
    sync(device)
    elapsed = time.perf_counter() - start

    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else lifetime_peak_rss_mib()
    return dict(part="memory", T=length, variant=variant, device=device, time_s=elapsed,
                peak_mib=peak, baseline_mib=baseline, increment_mib=peak - baseline,
                increment_per_1k_mib=(peak - baseline) / (length / 1000), method=method,
                threads=torch.get_num_threads(), ok=True, error="")


# ---------------------------------------------------------------------------- memory: parent
def spawn_memory_point(variant: str, length: int, device: str) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--point",
           "--point-T", str(length), "--point-variant", variant, "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO_ROOT))
    for line in proc.stdout.splitlines():
        if line.startswith(POINT_MARKER):
            return json.loads(line[len(POINT_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    error = f"child exit code {proc.returncode}: " + " / ".join(tail)
    return dict(part="memory", T=length, variant=variant, device=device, ok=False, error=error)


def loglog_slope(lengths: list[int], increments: list[float]) -> float | None:
    import numpy as np
    pairs = [(t, m) for t, m in zip(lengths, increments) if m is not None and m > 0]
    if len(pairs) < 2:
        return None
    t, m = zip(*pairs)
    return float(np.polyfit(np.log(t), np.log(m), 1)[0])


def affine_fit(lengths: list[int], increments: list[float]) -> tuple[float, float] | None:
    """increment ~ a + b * T / 1000 by least squares -> (a MiB, b MiB per 1k steps)."""
    import numpy as np
    if len(lengths) < 2:
        return None
    b, a = np.polyfit(np.asarray(lengths, dtype=float) / 1000, np.asarray(increments, dtype=float), 1)
    return float(a), float(b)


def memory_part(lengths: list[int], variants: list[str], device: str) -> list[dict[str, Any]]:
    cfg = ", ".join(f"{k}={v}" for k, v in MEMORY_CFG.items())
    print(f"=== MEMORY: forward + backward (loss = output.sum()), {cfg}, device={device}")
    print("    each point in a fresh subprocess; increment = peak - baseline (RSS right before the forward)")
    load = ForeignLoad()
    rows: list[dict[str, Any]] = []
    for length in lengths:
        for variant in variants:
            row = spawn_memory_point(variant, length, device)
            rows.append(row)
            status = "ok" if row["ok"] else "FAILED: " + row["error"]
            print(f"    T={length:>6} {variant:<8} {status}", flush=True)
    methods = sorted({r["method"] for r in rows if r.get("ok")})
    threads = sorted({r["threads"] for r in rows if r.get("ok")})
    print(f"memory method: {'; '.join(methods) or '-'}   (torch threads in children: {threads})")
    table = [dict(T=r["T"], variant=r["variant"],
                  time=fmt(r.get("time_s"), 3), peak=fmt(r.get("peak_mib"), 1),
                  base=fmt(r.get("baseline_mib"), 1), inc=fmt(r.get("increment_mib"), 1),
                  per1k=fmt(r.get("increment_per_1k_mib"), 2)) if r["ok"]
             else dict(T=r["T"], variant=r["variant"], time="FAILED") for r in rows]
    print_table(table, [("T", "T"), ("variant", "variant"), ("time", "time fwd+bwd (s)"),
                        ("peak", "peak MiB"), ("base", "baseline MiB"), ("inc", "increment MiB"),
                        ("per1k", "increment per 1k steps MiB")])
    print(load.report())
    print("log-log slope of increment vs T (numpy.polyfit on logs); slope ~1 means linear, ~2 quadratic:")
    for variant in variants:
        ok = [r for r in rows if r["variant"] == variant and r["ok"]]
        slope = loglog_slope([r["T"] for r in ok], [r["increment_mib"] for r in ok])
        span = f"T {ok[0]['T']}..{ok[-1]['T']}" if ok else "no points"
        last = loglog_slope([r["T"] for r in ok[-2:]], [r["increment_mib"] for r in ok[-2:]])
        fit = affine_fit([r["T"] for r in ok], [r["increment_mib"] for r in ok])
        extra = (f"; slope over the last doubling {fmt(last, 3)}; affine fit: {fit[0]:.1f} MiB fixed "
                 f"+ {fit[1]:.2f} MiB per 1k steps" if fit else "")
        print(f"    {variant:<8} slope = {fmt(slope, 3)}  ({span}, {len(ok)} points{extra})")
    print()
    return rows


# ---------------------------------------------------------------------------- speed
def build_speed_step(variant: str, length: int, device: str) -> Callable[[], float]:
    """A closure doing one training step (forward, head, CE, backward, Adam) -> loss."""
    import torch
    import torch.nn.functional as F
    from nac.layers import NeuronalAttentionCircuit
    seed_all(0)
    c = SPEED_CFG
    layer = NeuronalAttentionCircuit(c["input_dim"], c["d_model"], c["num_heads"], variant=variant,
                                     topk=c["topk"], mode=c["mode"], sparsity=c["sparsity"]).to(device)
    head = torch.nn.Linear(c["d_model"], c["classes"]).to(device)
    params = list(layer.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(c["batch"], length, c["input_dim"], device=device)
    y = torch.randint(0, c["classes"], (c["batch"],), device=device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(layer(x)), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def time_steps(step: Callable[[], float], device: str, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def speed_part(variants: list[str], device: str) -> list[dict[str, Any]]:
    import torch
    c = SPEED_CFG
    print(f"=== SPEED: paper E-MNIST settings, one training step = forward + Linear(64,10) + cross-entropy "
          f"+ backward + Adam; batch={c['batch']}, input_dim={c['input_dim']}, d_model={c['d_model']}, "
          f"heads={c['num_heads']}, topk={c['topk']}, sparsity={c['sparsity']}, mode={c['mode']}, device={device}")
    print(f"    {c['warmup']} warm-up steps, {c['steps']} timed steps (time.perf_counter)"
          f"{', cuda synchronize around each step' if device == 'cuda' else ''}; torch threads = "
          f"{torch.get_num_threads()}")
    print(f"    TF reference: {TF_PROVENANCE}: "
          + ", ".join(f"{v:.2f} s/step at T={t}" for t, v in TF_REFERENCE_S.items()))
    load = ForeignLoad()
    rows: list[dict[str, Any]] = []
    for length in SPEED_LENGTHS:
        for variant in variants:
            times = time_steps(build_speed_step(variant, length, device), device, c["warmup"], c["steps"])
            mean, std = statistics.mean(times), statistics.stdev(times) if len(times) > 1 else 0.0
            ref = TF_REFERENCE_S.get(length)
            speedup = ref / mean if ref else None
            target = TARGETS.get((variant, length))
            verdict = "-" if target is None or speedup is None else ("PASS" if speedup >= target else "FAIL")
            rows.append(dict(part="speed", T=length, variant=variant, device=device, mean_s=mean, std_s=std,
                             tf_reference_s=ref, speedup=speedup, target=target, verdict=verdict, ok=True))
            print(f"    T={length:>4} {variant:<8} done", flush=True)
    table = [dict(T=r["T"], variant=r["variant"], mean=fmt(r["mean_s"], 4), std=fmt(r["std_s"], 4),
                  ref=fmt(r["tf_reference_s"], 2), speedup=fmt(r["speedup"], 1) + "x",
                  target=(f">= {r['target']:.0f}x" if r["target"] else "-"), verdict=r["verdict"])
             for r in rows]
    print_table(table, [("T", "T"), ("variant", "variant"), ("mean", "mean s/step"), ("std", "std s/step"),
                        ("ref", "TF ref s/step"), ("speedup", "speed-up"), ("target", "target"),
                        ("verdict", "result")])
    print(load.report())
    print("targets: official >= 10x at T=11 and T=256, paper >= 5x at T=256")
    for (variant, length), target in TARGETS.items():
        hit = [r for r in rows if r["variant"] == variant and r["T"] == length]
        if hit:
            print(f"    {hit[0]['verdict']}: {variant} at T={length}: {fmt(hit[0]['speedup'], 1)}x (target >= {target:.0f}x)")
        else:
            print(f"    not run: {variant} at T={length} (variant not selected)")
    print()
    return rows


# ---------------------------------------------------------------------------- main
def write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    import pandas as pd
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"wrote {len(rows)} rows to {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["memory", "speed", "all"], default="all")
    p.add_argument("--lengths", type=int, nargs="+", default=MEMORY_LENGTHS, help="memory sweep lengths T")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    p.add_argument("--out", default=None, help="also write the rows to this CSV")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--point", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--point-T", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--point-variant", default="paper", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.point:
        print(POINT_MARKER + json.dumps(run_memory_point(args.point_variant, args.point_T, args.device)))
        return 0
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda asked for, but CUDA is not available", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print(f"nac bench: python {platform.python_version()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()} (default), device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print()
    rows: list[dict[str, Any]] = []
    if args.part in ("memory", "all"):
        rows += memory_part(args.lengths, args.variants, args.device)
    if args.part in ("speed", "all"):
        rows += speed_part(args.variants, args.device)
    if args.out:
        write_csv(args.out, rows)
    print(f"total bench time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

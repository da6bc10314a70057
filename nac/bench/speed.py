"""The training-speed benchmark of issue 12: one command for every figure, with targets.

    python -m nac.bench speed                       # every part; writes results/speed_<date>_<device>.{md,csv}
    python -m nac.bench speed --parts step,long     # a subset (files go to runs/bench/)
    python -m nac.bench speed --quick               # seconds: tiny shapes, no verdicts (runs/bench/)
    python -m nac.bench speed --device cuda

Parts (each row of the table is one figure):

* references -- always: a torch ``nn.LSTM`` and ``nn.MultiheadAttention`` training step at the step
  shapes, so that figures from different machines compare as ratios (``x LSTM``, ``x MHA``: the
  figure over the reference's median; step rows against the reference at the same T, long and epoch
  rows against the reference at the longest step T).
* ``step`` -- one NAC training step at the paper's E-MNIST settings (input 64, d_model 64, 16 heads,
  top-K 10, sparsity 0.7, exact mode, batch 32, a Linear(64, 10) head, cross-entropy, backward, Adam
  step), T = 11 and 256, both variants: median of 10 steps after 2 warm-up steps.
* ``long`` -- one forward + backward (loss = output.sum()) at batch 1, d_model 64, 16 heads, top-K 8,
  exact mode, T = 1,024, 4,096 and 16,384, each point in a fresh process: the memory increment of the
  first (cold) pass, then the median of 3 more passes.
* ``epoch`` -- one training epoch, run by ``nac-bench`` itself: E-MNIST (``emnist_clean``) for both
  variants and the bearings ``paper`` experiment (fold 0); a missing dataset is a row saying so.

Torch runs on 2 threads unless ``--threads`` says otherwise. Each row gives the CPU time other
processes used while it was measured; timings on a shared machine are inflated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from nac.bench.epoch import EPOCHS, run_epoch
from nac.bench.fresh import call_fresh
from nac.bench.load import ForeignLoad
from nac.bench.report import Provenance, Report, Row, number
from nac.bench.timing import Summary, measure
from nac.bench.workloads import EVERY_QUERY, NAC_VARIANTS, REFERENCES, LongShape, StepShape, training_step
from nac.harness.environment import PROJECT_ROOT

PARTS = ("step", "long", "epoch")
STEP_LENGTHS = (11, 256)
LONG_LENGTHS = (1024, 4096, 16384)
QUICK_STEP_LENGTHS = (11, 32)
QUICK_LONG_LENGTHS = (64, 128)

#: issue 12's targets (upper bounds)
STEP_TARGET_S = {("official", 11): 0.010, ("official", 256): 0.25, ("paper", 11): 0.012, ("paper", 256): 0.45}
LONG_TARGET_S = {16384: 15.0}
LONG_TARGET_MIB = {16384: 1024.0}
EPOCH_TARGET_S = {"emnist_clean paper": 15.0, "emnist_clean official": 8.0, "bearings_paper paper": 15.0}
#: the authors' TensorFlow layer, one training step at the step settings (TF 2.21 CPU, graph mode,
#: 2 threads, quiet 2-core machine), as measured by the project lead (issue 12)
TF_REFERENCE_S = {11: 0.123, 256: 3.01}
REFERENCE_NAMES = {"lstm": "LSTM", "mha": "MHA"}


class UsageError(Exception):
    """A bad option: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(message)


def _split(values: Sequence[str] | None, choices: Sequence[str], option: str) -> list[str]:
    """``["step,long", "epoch"]`` -> ``["step", "long", "epoch"]``, checked against ``choices``."""
    items = [v.strip() for value in (values or []) for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in choices]
    if bad:
        raise UsageError(f"{option}: unknown {', '.join(map(repr, bad))}; choose from {','.join(choices)}")
    return list(dict.fromkeys(items))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m nac.bench speed", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--parts", nargs="+", default=None, help=f"comma-separated subset of {','.join(PARTS)} (default all)"
    )
    p.add_argument("--quick", action="store_true", help="tiny shapes and 1-3 repeats: a smoke run of seconds")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads, here and in every child (default 2)")
    p.add_argument("--variants", nargs="+", default=None, help="NAC variants, comma-separated (default paper,official)")
    p.add_argument("--step-lengths", type=int, nargs="+", default=None, help="T of the step rows (default 11 256)")
    p.add_argument(
        "--long-lengths",
        "--lengths",
        type=int,
        nargs="+",
        default=None,
        help="T of the long rows (default 1024 4096 16384)",
    )
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps before the timed ones (default 2)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per step row (default 10)")
    p.add_argument("--long-repeats", type=int, default=None, help="timed passes after the cold one (default 3)")
    p.add_argument(
        "--epoch-repeats",
        type=int,
        default=None,
        help="epochs trained per epoch row, the row being their median (default 3; 1 under --quick)",
    )
    p.add_argument("--data-root", default=None, help="data root for the epoch part (default: the runner's)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per fresh process before it is given up")
    p.add_argument(
        "--out-dir",
        default=None,
        help="where the .md and .csv go (default results/ for the full suite, else runs/bench/)",
    )
    p.add_argument("--name", default=None, help="file name without suffix (default speed_<date>_<device>...)")
    p.add_argument("--out", default=None, help="write the CSV to this path (the .md beside it)")
    # scripts/bench_nac.py's older options, kept as aliases
    p.add_argument("--suite", choices=["speed"], default=None, help="the speed suite (the only one; the default)")
    p.add_argument(
        "--part",
        choices=["memory", "speed", "all"],
        default=None,
        help="alias: memory = --parts long, speed = --parts step, all = every part",
    )
    args = p.parse_args(list(argv))
    if args.part and args.parts:
        raise UsageError("give --parts or --part, not both")
    alias = {"memory": ["long"], "speed": ["step"], "all": list(PARTS)}
    args.parts = alias[args.part] if args.part else (_split(args.parts, PARTS, "--parts") or list(PARTS))
    args.variants = _split(args.variants, NAC_VARIANTS, "--variants") or list(NAC_VARIANTS)
    for name in ("threads", "repeats", "long_repeats", "epoch_repeats", "warmup", "timeout"):
        value, may_be_zero = getattr(args, name), name in ("warmup", "long_repeats")
        if value is not None and value < (0 if may_be_zero else 1):
            raise UsageError(
                f"--{name.replace('_', '-')} must be {'0 or more' if may_be_zero else 'positive'}, got {value}"
            )
    for name in ("step_lengths", "long_lengths"):
        if any(t < 1 for t in getattr(args, name) or []):
            raise UsageError(f"--{name.replace('_', '-')}: lengths must be positive")
    quick = args.quick
    args.step_lengths = args.step_lengths or list(QUICK_STEP_LENGTHS if quick else STEP_LENGTHS)
    args.long_lengths = args.long_lengths or list(QUICK_LONG_LENGTHS if quick else LONG_LENGTHS)
    args.warmup = (1 if quick else 2) if args.warmup is None else args.warmup
    args.repeats = args.repeats or (3 if quick else 10)
    args.long_repeats = (1 if quick else 3) if args.long_repeats is None else args.long_repeats
    args.epoch_repeats = args.epoch_repeats or (1 if quick else 3)
    return args


def _check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if kind not in ("cpu", "cuda"):
        raise UsageError(f"--device {device!r}: only cpu and cuda are timed here")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asked for, but CUDA is not available")


def _is_full(args: argparse.Namespace) -> bool:
    """The whole suite at the issue's settings (only such runs go to results/ by default)."""
    return (
        not args.quick
        and args.parts == list(PARTS)
        and args.variants == list(NAC_VARIANTS)
        and args.step_lengths == list(STEP_LENGTHS)
        and args.long_lengths == list(LONG_LENGTHS)
        and args.warmup == 2
        and args.repeats == 10
        and args.threads == 2
    )


def output_path(args: argparse.Namespace, when: datetime) -> Path:
    """The Markdown file to write (the CSV goes beside it)."""
    if args.out:
        return Path(args.out).with_suffix(".md")
    device = f"cpu{args.threads}t" if args.device == "cpu" else args.device.replace(":", "")
    name = args.name or "_".join(
        ["speed", when.strftime("%Y-%m-%d"), device]
        + (["quick"] if args.quick else [])
        + ([] if args.parts == list(PARTS) else ["-".join(args.parts)])
    )
    out_dir = Path(args.out_dir) if args.out_dir else PROJECT_ROOT / ("results" if _is_full(args) else "runs/bench")
    return out_dir / f"{name}.md"


def _ratio(value: float | None, reference: Row | None) -> float | None:
    if value is None or reference is None or not reference.median:
        return None
    return value / reference.median


def attach_ratios(rows: Sequence[Row], references: Sequence[Row], yardstick_length: int) -> None:
    """Set ``x_lstm``/``x_mha`` of every timed row: its median over the reference step's median at the
    same T (step rows), or at ``yardstick_length`` (long and epoch rows, and steps without a reference)."""

    def reference(kind: str, length: int) -> Row | None:
        return next((r for r in references if r.what == f"step {REFERENCE_NAMES[kind]} T={length}"), None)

    for row in rows:
        if row.unit != "s":
            continue
        length = int(row.what.rsplit("T=", 1)[1]) if row.part == "step" else yardstick_length
        for kind in REFERENCES:
            setattr(row, f"x_{kind}", _ratio(row.median, reference(kind, length) or reference(kind, yardstick_length)))


def _step_rows(kinds: Sequence[str], args: argparse.Namespace, part: str) -> list[Row]:
    import torch

    shape = StepShape()
    rows = []
    for length in args.step_lengths:
        for kind in kinds:
            load = ForeignLoad()
            name = REFERENCE_NAMES.get(kind, kind)
            step = training_step(kind, length, shape, args.device)
            summary = Summary.of(
                measure(
                    step,
                    warmup=args.warmup,
                    repeats=args.repeats,
                    label=f"{name} step T={length}",
                    num_threads=torch.get_num_threads(),
                )
            )
            row = Row(
                part=part,
                what=f"step {name} T={length}",
                shape=shape.describe(length),
                **_stats(summary),
                target=STEP_TARGET_S.get((kind.removesuffix(EVERY_QUERY), length)),
                load_cores=load.reading().cores,
            )
            rows.append(row)
            print(f"  {row.what}: {number(row.median, 's')}", flush=True)
            del step
    return rows


def _with_every_query(variants: Sequence[str]) -> list[str]:
    """Each variant as measured (attending from the returned last query only: the same output and
    gradients as every query), then ``<variant>+all``: every query, as the authors' layer computes."""
    return [*variants, *(f"{v}{EVERY_QUERY}" for v in variants)]


def _stats(summary: Summary) -> dict:
    return {"median": summary.median, "iqr": summary.iqr, "low": summary.low, "high": summary.high, "n": summary.n}


def _long_rows(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    shape = LongShape()
    rows, slopes = [], []
    for variant in _with_every_query(args.variants):
        points = []
        for length in args.long_lengths:
            load = ForeignLoad()
            done = call_fresh(
                "nac.bench.workloads:long_point",
                dict(
                    variant=variant,
                    length=length,
                    device=args.device,
                    threads=args.threads,
                    repeats=args.long_repeats,
                    shape=asdict(shape),
                ),
                timeout=args.timeout,
            )
            result, cores = done.result(), load.reading().cores
            time_row = Row(
                part="long",
                what=f"long {variant} fwd+bwd T={length}",
                shape=shape.describe(length),
                target=LONG_TARGET_S.get(length),
                load_cores=cores,
            )
            mem_row = Row(
                part="long",
                what=f"long {variant} memory increment T={length}",
                unit="MiB",
                shape=shape.describe(length),
                target=LONG_TARGET_MIB.get(length),
                load_cores=cores,
            )
            if result is None:
                time_row.note = mem_row.note = f"not run: {done.why()}"
            else:
                times = result["times_s"] or [result["cold_s"]]
                time_row.__dict__.update(_stats(Summary.of_times(times)))
                if not result["times_s"]:
                    time_row.note = "the cold pass (--long-repeats 0)"
                mem_row.median, mem_row.n = result["increment_mib"], 1
                mem_row.note = (
                    f"peak {number(result['peak_mib'])} MiB - before {number(result['baseline_mib'])} MiB"
                    f" ({result['memory_method']}); cold pass {number(result['cold_s'], 's')}"
                )
                points.append((length, result["increment_mib"]))
            rows += [time_row, mem_row]
            print(
                f"  {time_row.what}: {number(time_row.median, 's')}, memory increment {number(mem_row.median, 'MiB')}",
                flush=True,
            )
        slopes.append(f"{variant} {_slope(points)}")
    return rows, slopes


def _slope(points: list[tuple[int, float]]) -> str:
    """Log-log slope of memory increment against T (1 linear, 2 quadratic) over the measured points."""
    import numpy as np

    points = [(t, m) for t, m in points if m > 0]
    if len(points) < 2:
        return "- (fewer than 2 points)"
    t, m = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return f"{float(np.polyfit(t, m, 1)[0]):.2f} (T {points[0][0]}..{points[-1][0]})"


def _epoch_rows(args: argparse.Namespace) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="nac-bench-epoch-") as scratch:
        for i, spec in enumerate(EPOCHS):
            load = ForeignLoad()
            result = run_epoch(
                spec,
                device=args.device,
                threads=args.threads,
                workdir=Path(scratch) / str(i),
                data_root=Path(args.data_root) if args.data_root else None,
                quick=args.quick,
                timeout=args.timeout,
                epochs=args.epoch_repeats,
            )
            shape = f"{spec.experiment} {' '.join(spec.overrides)}" + (
                f" limit={spec.quick_limit}" if args.quick else ""
            )
            row = Row(
                part="epoch",
                what=f"epoch {spec.key}",
                shape=shape,
                target=EPOCH_TARGET_S.get(spec.key),
                load_cores=load.reading().cores,
            )
            if not result.epoch_seconds:
                row.note = f"not run: {result.error}"
            else:
                for key, value in _stats(Summary.of_times(result.epoch_seconds, spec.key)).items():
                    setattr(row, key, value)
                row.note = "; ".join([f"{result.n_train:,} training samples" if result.n_train else "", *result.notes])
                row.note = row.note.strip("; ")
            rows.append(row)
            print(f"  {row.what}: {number(row.median, 's') if row.median is not None else row.note}", flush=True)
    return rows


def _settings(args: argparse.Namespace) -> list[str]:
    step, long = StepShape(), LongShape()
    lines = [
        f"Step{'' if 'step' in args.parts else ' (references only)'}: batch {step.batch}, input {step.input_dim}, "
        f"d_model {step.d_model}, {step.heads} heads, top-K {step.topk}, sparsity {step.sparsity}, {step.mode} mode; "
        f"forward, Linear({step.d_model}, {step.classes}) head, cross-entropy, backward, Adam step; median of "
        f"{args.repeats} steps after {args.warmup} warm-up. References: nn.LSTM({step.input_dim}, {step.d_model}) "
        f"and nn.MultiheadAttention({step.d_model}, {step.heads}) (last step) with the same head, loss and optimizer.",
    ]
    if "long" in args.parts:
        lines.append(
            f"Long: batch {long.batch}, d_model {long.d_model}, {long.heads} heads, top-K {long.topk}, {long.mode} "
            "mode, layer-default sparsity; forward + backward of output.sum(), each T in a fresh process: memory "
            "increment of the cold pass (peak minus memory held before it), time = median of "
            f"{args.long_repeats} more passes."
        )
    if "epoch" in args.parts:
        lines.append(
            f"Epoch: `python -m nac experiment=<name> trainer.epochs={args.epoch_repeats}` in a fresh process; the "
            "median of its record's per-epoch training times (history[*].epoch_time_s: the training loop, not "
            "validation or test)."
        )
    lines += [
        "x LSTM / x MHA: the figure divided by the reference step's median (step rows: same T; long and epoch "
        f"rows: T={max(args.step_lengths)}). other load: cores other processes kept busy while the row was "
        "measured; a verdict marked (busy) was measured on a shared machine (over 0.1 cores): re-run it quietly.",
        "The authors' TensorFlow layer at the step settings (TF 2.21 CPU, graph mode, 2 threads, measured by the "
        "project lead): " + ", ".join(f"{v} s at T={t}" for t, v in TF_REFERENCE_S.items()) + ".",
    ]
    if args.quick:
        lines.append("QUICK RUN: reduced shapes, data and repeats; no verdicts, figures not comparable to targets.")
    return lines


def run(args: argparse.Namespace, prog: str, argv: Sequence[str]) -> int:
    import torch

    torch.set_num_threads(args.threads)
    when = datetime.now(timezone.utc)
    provenance = Provenance.now(
        prog,
        list(argv),
        torch.get_num_threads(),
        args.device
        + (f" ({torch.cuda.get_device_name(torch.device(args.device))})" if args.device.startswith("cuda") else ""),
    )
    print(
        f"speed benchmark: parts {','.join(args.parts)}{' (quick)' if args.quick else ''}; "
        + "; ".join(provenance.lines()[3:]),
        flush=True,
    )
    overall = ForeignLoad()
    print("references (torch nn.LSTM, nn.MultiheadAttention):", flush=True)
    references = _step_rows(REFERENCES, args, "reference")
    rows: list[Row] = []
    extra: list[str] = []
    if "step" in args.parts:
        print("step:", flush=True)
        rows += _step_rows(_with_every_query(args.variants), args, "step")
    if "long" in args.parts:
        print("long (each point in a fresh process):", flush=True)
        long_rows, slopes = _long_rows(args)
        rows += long_rows
        extra.append("Memory increment against T, log-log slope (1 = linear, 2 = quadratic): " + "; ".join(slopes))
        print(extra[-1], flush=True)
    if "epoch" in args.parts:
        print("epoch (nac-bench, one epoch each):", flush=True)
        rows += _epoch_rows(args)
    attach_ratios(rows, references, max(args.step_lengths))
    for row in references + rows:
        row.judge(verdicts=not args.quick)
    report = Report(provenance, _settings(args), references + rows, overall.report(), extra)
    md_path, csv_path = report.write(output_path(args, when), "NAC training speed (issue 12)")
    print()
    print(report.text("NAC training speed (issue 12)"))
    print(f"wrote {md_path} and {csv_path}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "-m nac.bench speed") -> int:
    """Run the suite; a bad option is one line on stderr and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        _check_device(args.device)
    except UsageError as err:
        print(f"{prog.removeprefix('-m ')}: error: {err}", file=sys.stderr)
        return 2
    return run(args, prog, argv)

"""One training epoch of an experiment, timed by the runner itself.

Each experiment runs ``python -m nac experiment=<name> trainer.epochs=<n> ...`` in a fresh process (the
harness's own command, so whatever the runner does per epoch is what is timed) and reads every
epoch's training time (``history[*].epoch_time_s``) from the record it writes; the figure is their
median, so one slow epoch on a shared machine does not decide a verdict. Records and Hydra output go
to a scratch folder; preprocessing caches are the project's usual ones (``paths.cache_dir``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nac.bench.fresh import run_command


@dataclass(frozen=True)
class EpochSpec:
    """An experiment whose training epoch is timed."""

    key: str  # row label
    experiment: str  # configs/experiment/<name>.yaml
    overrides: tuple[str, ...]  # model and its settings
    quick_limit: int  # dataset.builder.limit under --quick
    data_folder: str  # folder under the data root
    about: str = ""


EPOCHS = (
    EpochSpec(
        "emnist_clean paper",
        "emnist_clean",
        ("model=nac",),
        64,
        "mnist",
        "E-MNIST clean protocol, the paper's NAC settings (48,000 training images, batch 32)",
    ),
    EpochSpec(
        "emnist_clean official",
        "emnist_clean",
        ("model=nac_official",),
        64,
        "mnist",
        "E-MNIST clean protocol, the official variant",
    ),
    EpochSpec(
        "bearings_paper paper",
        "bearings_paper",
        ("model=nac", "model.activation=relu"),
        40,
        "bearings",
        "bearings paper protocol, fold 0 (PRONOSTIA 1_4-1_7 pooled, about 45k length-1 rows, batch 64)",
    ),
)


@dataclass
class EpochResult:
    """The epoch's seconds and the run's facts, or why there are none."""

    spec: EpochSpec
    epoch_seconds: list[float] = field(default_factory=list)
    n_train: int | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def _link_tree(source: Path, target: Path) -> None:
    """``target`` mirrors ``source``: its folders made, its files symlinked."""
    for path in sorted(source.rglob("*")):
        if path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path.resolve())


def bearings_root(root: Path, workdir: Path) -> tuple[Path, str]:
    """A data root holding the paper's bearings: ``root`` itself, or, when PRONOSTIA files are missing
    from ``bearings/features/pronostia`` but present in ``bearings/extracted`` (the shared dev copy),
    a scratch root of symlinks that adds them. Returns (root, a note saying which files were added)."""
    from nac.data.bearings import PAPER_TESTS, PAPER_TRAIN, SUFFIX, feature_file, parse_ref

    refs = [parse_ref(b) for b in PAPER_TRAIN] + [parse_ref(b, name) for name, b in PAPER_TESTS.items()]
    missing = [ref for ref in refs if not feature_file(root, ref).is_file()]
    extracted = root / "bearings" / "extracted"
    found = {}
    for ref in missing:
        name = f"{ref.bearing}{SUFFIX[ref.dataset]}"
        hits = [extracted / n for n in (name, name + ".gz") if (extracted / n).is_file()]
        if ref.dataset == "pronostia" and hits:
            found[ref] = hits[0]
    if not missing or len(found) < len(missing):
        return root, ""  # nothing to add, or not enough: the run says what is missing
    overlay = workdir / "data"
    _link_tree(root / "bearings" / "features", overlay / "bearings" / "features")
    for ref, path in found.items():
        link = feature_file(overlay, ref).with_name(path.name)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path.resolve())
    names = ", ".join(ref.bearing for ref in found)
    return overlay, f"PRONOSTIA {names} read from {extracted} (features from this project's extractor)"


def epoch_command(
    spec: EpochSpec,
    *,
    device: str,
    threads: int,
    workdir: Path,
    data_root: Path | None,
    quick: bool,
    epochs: int = 1,
) -> list[str]:
    """The ``nac-bench`` command line that trains ``spec`` for ``epochs`` epochs."""
    argv = [
        sys.executable,
        "-m",
        "nac",
        f"experiment={spec.experiment}",
        *spec.overrides,
        "hydra.mode=RUN",
        f"trainer.epochs={epochs}",
        "trainer.progress=false",
        "force=true",
        "seed=0",
        f"threads={threads}",
        f"device={device}",
        f"paths.records_dir={workdir / 'records'}",
        f"hydra.run.dir={workdir / 'hydra'}",
    ]
    if data_root is not None:
        argv.append(f"paths.data_root={data_root}")
    if quick:
        argv += [f"dataset.builder.limit={spec.quick_limit}", "trainer.latency_samples=2"]
    return argv


def _error_line(stderr: str, fallback: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("nac-bench: error:"):
            return line[len("nac-bench: error:") :].strip()
    return fallback


def run_epoch(
    spec: EpochSpec,
    *,
    device: str,
    threads: int,
    workdir: Path,
    data_root: Path | None,
    quick: bool,
    timeout: float | None,
    epochs: int = 1,
) -> EpochResult:
    """Train ``spec`` for ``epochs`` epochs in a fresh process; the result holds each epoch's training
    seconds, or says why there are none."""
    from nac.harness.runner import resolve_data_root

    workdir.mkdir(parents=True, exist_ok=True)
    result = EpochResult(spec)
    root = resolve_data_root(str(data_root) if data_root else None, spec.data_folder)
    if spec.data_folder == "bearings":
        root, note = bearings_root(root, workdir)
        if note:
            result.notes.append(note)
    result.command = epoch_command(
        spec, device=device, threads=threads, workdir=workdir, data_root=root, quick=quick, epochs=epochs
    )
    finished = run_command(result.command, timeout=timeout)
    record_file = workdir / "hydra" / "record.json"
    record: dict[str, Any] = json.loads(record_file.read_text()) if record_file.is_file() else {}
    if not finished.ok or record.get("status") != "ok":
        result.error = _error_line(finished.stderr, finished.why())
        return result
    result.epoch_seconds = [float(h["epoch_time_s"]) for h in record.get("history") or [] if "epoch_time_s" in h]
    if not result.epoch_seconds:  # a record without per-epoch history: its mean is the one figure
        result.epoch_seconds = [float(record["train_time_per_epoch_s"])]
    result.n_train = record.get("n_train")
    return result

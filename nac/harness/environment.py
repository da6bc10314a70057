"""Seeding, device resolution and provenance (package versions, git commit, device name)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES = (
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "hydra-core",
    "omegaconf",
    "ncps",
    "torchdiffeq",
    "wandb",
    "nac-bench",
)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (0 is a valid seed); optionally force deterministic kernels."""
    if seed is None:
        raise ValueError("seed must be an integer (0 is valid); got None")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r} is not valid; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but CUDA is not available; use device=cpu or auto")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git(root: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=30, check=True).stdout


#: what a run computes with: uncommitted changes elsewhere (README, docs/, results/, tests/) leave a
#: run's code, and so its identity, unchanged
CODE_PATHS = ("nac", "baselines", "configs", "hydra_plugins", "scripts", "pyproject.toml")


def _uncommitted_digest(root: Path) -> str:
    """Short hash of the uncommitted state of the code (:data:`CODE_PATHS`): the diff of tracked
    files against HEAD, plus the names and content of untracked files that git does not ignore;
    empty when there is none."""
    diff = _git(root, "diff", "HEAD", "--binary", "--", *CODE_PATHS)
    untracked = sorted(
        name
        for name in _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS).split(b"\0")
        if name
    )
    if not diff and not untracked:
        return ""
    digest = hashlib.sha256(diff)
    for name in untracked:
        digest.update(b"\0file\0" + name + b"\0")
        try:
            digest.update((root / os.fsdecode(name)).read_bytes())
        except OSError:  # vanished or unreadable meanwhile: its name still counts
            pass
    return digest.hexdigest()[:10]


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """HEAD commit of the project checkout; ``unknown`` outside git.

    With uncommitted changes to the code (tracked edits or untracked, non-ignored files under
    :data:`CODE_PATHS`) it is ``<sha>-dirty-<hash of those changes>``, so two different uncommitted states
    never share an id (and a run is not skipped as finished after a second edit).
    """
    try:
        commit = _git(root, "rev-parse", "HEAD").decode().strip()
        dirty = _uncommitted_digest(root)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty-{dirty}" if dirty else commit

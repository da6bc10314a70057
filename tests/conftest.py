"""Shared fixtures: Hydra composition of the project's configs with tiny budgets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from nac.models.factory import model_name

ROOT = Path(__file__).resolve().parents[1]
#: the real development data (read in place, never copied): $NAC_DATA_ROOT (set by .ci/run), else
#: ../shared/data next to the project; real-data tests skip with a reason when it is absent
SHARED_DATA = Path(os.environ.get("NAC_DATA_ROOT") or ROOT.parent / "shared" / "data")
CONFIGS = str(ROOT / "configs")
#: overrides that make any run take a second or two
TINY = [
    "trainer.epochs=2",
    "trainer.limit_train_batches=3",
    "dataset.builder.limit=200",
    "trainer.progress=false",
    "trainer.latency_samples=4",
]

os.environ.setdefault("WANDB_MODE", "disabled")


def compose_run(*overrides: str) -> DictConfig:
    """The config a run of ``overrides`` gets, ready for ``runner.execute`` outside Hydra's CLI: of the
    ``hydra`` node (only a Hydra job can resolve all of it) only ``hydra.runtime.choices`` is kept, where
    :func:`model_name` finds the ``model=`` choice; ``hydra`` is not part of a run's identity, so the run
    is the one the CLI makes."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg["hydra"] = {"runtime": {"choices": choices}}
    return cfg


def model_choice(*overrides: str) -> str:
    """The model name a run of ``overrides`` records (Hydra's ``model=`` choice)."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return model_name(compose("config", overrides=list(overrides), return_hydra_config=True))


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the project config for a single run writing under tmp_path."""

    def _make(*overrides: str):
        return compose_run("experiment=none", f"paths.output_root={tmp_path}", *TINY, *overrides)

    return _make


def run_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m nac`` the way a user does; returns the finished process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-m", "nac", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )

"""The ``nac-bench`` command (also ``python -m nac``): a Hydra app composed from ``configs/``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from nac.harness.environment import PROJECT_ROOT
from nac.harness.runner import SetupError, run

CONFIG_DIR = str(PROJECT_ROOT / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        return run(cfg)
    except SetupError as err:  # a clear message, not a traceback from deep inside
        print(f"nac-bench: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""The ``nac-bench`` command (also ``python -m nac``): a Hydra app composed from ``configs/``.

Exit codes: 0 done (a sweep also when some of its runs diverged: its table says so); 1 an
unexpected error (with its traceback); 2 a bad setting, missing data or a model that cannot be
built (one line); 3 a single run diverged (one line; its record says ``diverged``); 4 another
process is running the same run (one line naming it); 130 / 143 interrupted by SIGINT (Ctrl-C) /
SIGTERM (one line; the run's record says ``interrupted``, and a sweep writes the table of what
finished as ``table.partial.md``/``.csv``).
"""

from __future__ import annotations

import logging
import math
import sys

import hydra
from omegaconf import DictConfig

from nac.harness import callbacks, interrupt
from nac.harness.environment import PROJECT_ROOT
from nac.harness.errors import SetupError
from nac.harness.lock import RunLocked
from nac.harness.runner import best_validation, execute

CONFIG_DIR = str(PROJECT_ROOT / "configs")
EXIT_SETUP, EXIT_DIVERGED, EXIT_LOCKED = 2, 3, 4
log = logging.getLogger(__name__)


def _in_sweep() -> bool:
    """Whether this job is one of a multirun (``-m``, or an experiment that sweeps)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _fail(message: str, code: int) -> None:
    print(f"nac-bench: error: {message}", file=sys.stderr)
    raise SystemExit(code)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def app(cfg: DictConfig) -> float:
    """One job: run it and turn the ways it can end into exit codes (see the module docstring).

    In a sweep a diverged run, or one that another process is running, does not stop the others.
    """
    try:
        record = execute(cfg)
    except SetupError as err:  # a clear message, not a traceback from deep inside
        _fail(str(err), EXIT_SETUP)
    except RunLocked as err:
        if _in_sweep():
            log.warning("skipped: %s", err)
            return math.nan
        _fail(str(err), EXIT_LOCKED)
    if record.get("status") == "diverged" and not _in_sweep():
        _fail(f"run diverged: {record.get('error')}; its record says status diverged", EXIT_DIVERGED)
    return best_validation(record)


def with_default_experiment(argv: list[str]) -> list[str]:
    """``argv`` plus ``experiment=default`` when it holds no override (no ``key=value``): bare
    ``nac-bench`` (also with flags such as ``-m`` or ``--cfg job``) runs the default benchmark, and
    any override (``model=cfc``) makes it one run."""
    if any("=" in arg for arg in argv[1:]):
        return argv
    return [*argv, "experiment=default"]


def main() -> None:
    """Entry point: SIGTERM stops a run like Ctrl-C; an interrupted or failed sweep still writes its table."""
    sys.argv = with_default_experiment(sys.argv)
    interrupt.install_sigterm_handler()
    try:
        app()
    except KeyboardInterrupt as err:
        partial = callbacks.write_partial_table(f"interrupted by {interrupt.signal_name(err)}")
        message = (
            str(err) if isinstance(err, interrupt.RunInterrupted) else f"interrupted by {interrupt.signal_name(err)}"
        )
        print(f"nac-bench: {message}" + (f"; partial table {partial}" if partial else ""), file=sys.stderr)
        raise SystemExit(interrupt.exit_code(err)) from None
    except BaseException:
        callbacks.write_partial_table("stopped by an error")
        raise


if __name__ == "__main__":
    main()

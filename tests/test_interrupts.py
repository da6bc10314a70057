"""SIGTERM and SIGINT: a real ``nac-bench`` process stopped mid-training leaves an ``interrupted``
record with the epochs done so far, prints one line and exits 143 / 130; an interrupted sweep still
writes the table of what finished; submitit's own signal handling is kept."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nac.harness import runner as runner_module
from nac.harness.records import load_records
from nac.harness.runner import run
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # end-to-end: processes, sweeps, a cluster (pytest -m 'not slow' skips them)

LONG = [
    "experiment=none",
    "dataset.builder.limit=200",
    "trainer.progress=false",
    "trainer.latency_samples=2",
    "threads=1",
]


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "out.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nac", *args, f"paths.output_root={tmp_path}"],
        cwd=tmp_path,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # as in a terminal
    return proc, log


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never saw {text!r}: {log.read_text()[-2000:]} {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_a_run_with_an_interrupted_record(tmp_path, sig, code):
    proc, log = _start(tmp_path, *LONG, "trainer.epochs=300")
    _wait_for(proc, log, "epoch 1/300")
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    (line,) = proc.stderr.read().strip().splitlines()  # one line, no traceback
    assert line.startswith(f"nac-bench: nac interrupted by {signal.Signals(sig).name} after ") and "record" in line
    (rec,) = load_records(tmp_path / "records")
    assert rec["status"] == "interrupted" and 1 <= rec["epochs_run"] < 300
    assert [h["epoch"] for h in rec["history"]] == list(range(1, rec["epochs_run"] + 1))
    assert f"after {rec['epochs_run']} of 300 epochs" in line and rec["_path"] in line


def test_interrupted_sweep_writes_a_partial_table(tmp_path):
    """Ctrl-C during the second run of a sequential sweep: the first run's result is in a table
    named partial, the second run's record says interrupted."""
    proc, log = _start(tmp_path, "-m", *LONG, "trainer.epochs=2,300", "trainer.limit_train_batches=3")
    _wait_for(proc, log, "epoch 1/300")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in proc.stderr.read()
    (table,) = list((tmp_path / "multirun").rglob("table.partial.md"))
    text = table.read_text()
    assert text.startswith("Partial table: the sweep was interrupted by SIGINT")
    assert "| 1/1 " in text and "incomplete: 1 not ok (interrupted)" in text
    assert not list((tmp_path / "multirun").rglob("table.md"))
    assert sorted(r["status"] for r in load_records(tmp_path / "records")) == ["interrupted", "ok"]


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_sigterm_under_submitit_saves_a_record_and_leaves_the_decision_to_submitit(
    make_cfg, tmp_path, monkeypatch, restore_signals
):
    """submitit's job process logs and ignores SIGTERM (and SLURM kills the job soon after a
    scancel): the runner saves an interrupted record first, then calls submitit's handler; when the
    job still finishes, its ok record replaces the interrupted one."""
    bypassed, seen = [], []
    signal.signal(signal.SIGTERM, lambda signum, frame: bypassed.append(signum))  # like submitit's bypass
    real_fit = runner_module.fit

    def fit_then_sigterm(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        seen.extend(load_records(tmp_path / "records"))
        return result

    monkeypatch.setattr(runner_module, "fit", fit_then_sigterm)
    run(make_cfg("seed=0"))
    assert bypassed == [signal.SIGTERM]
    (snapshot,) = seen
    assert snapshot["status"] == "interrupted" and snapshot["epochs_run"] == 2
    (final,) = load_records(tmp_path / "records")
    assert final["status"] == "ok"


def test_submitit_requeue_exit_leaves_an_interrupted_record(make_cfg, tmp_path, monkeypatch, restore_signals):
    """On SIGUSR2 submitit checkpoints, requeues and leaves with SystemExit: kept as it is, and recorded."""

    def requeue_and_exit(signum, frame):
        raise SystemExit(-1)  # what submitit's checkpoint_and_try_requeue ends with

    signal.signal(signal.SIGUSR2, requeue_and_exit)
    real_fit = runner_module.fit

    def fit_signalled_after_epoch_one(*args, **kwargs):
        record_epoch = kwargs["on_epoch_end"]

        def on_epoch_end(entry):
            record_epoch(entry)
            if entry["epoch"] == 1:
                os.kill(os.getpid(), signal.SIGUSR2)

        return real_fit(*args, **{**kwargs, "on_epoch_end": on_epoch_end})

    monkeypatch.setattr(runner_module, "fit", fit_signalled_after_epoch_one)
    with pytest.raises(SystemExit):
        run(make_cfg("seed=0"))
    (rec,) = load_records(tmp_path / "records")
    assert rec["status"] == "interrupted" and rec["epochs_run"] == 1 and "submitit" in rec["error"]

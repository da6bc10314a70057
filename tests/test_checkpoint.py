"""Resume from the last finished epoch (nac/harness/train.py, runner.py, resume.py): a run stopped after
epoch k and started again gives the record of a run that was never stopped, bit for bit."""

import json
import logging
import shutil

import pytest

from nac.harness import interrupt
from nac.harness import runner as runner_module
from nac.harness.runner import execute

#: 4 epochs; a plateau scheduler that never sees an improvement after epoch 1 and so lowers the
#: learning rate at epoch 3 whatever the data (a resumed run that forgets its state would not)
CONFIG = (
    "model=cnn1d",  # dropout 0.5: training draws from torch's RNG
    "seed=0",
    "trainer.epochs=4",
    "trainer.scheduler.patience=1",
    "+trainer.scheduler.threshold=10",
    "+trainer.scheduler.threshold_mode=abs",
)
STOP_AFTER = 2


def _record(tmp_path) -> tuple[dict, object]:
    (file,) = (tmp_path / "records").rglob("*.json")
    return json.loads(file.read_text()), file


def _checkpoints(tmp_path) -> list:
    return sorted((tmp_path / "records").rglob("*.ckpt.pt"))


def _stop_after(monkeypatch, epoch: int) -> None:
    """Ctrl-C right after ``epoch`` is done (its checkpoint saved, its history entry kept)."""
    done = runner_module._Attempt.epoch_done

    def epoch_done(self, entry):
        done(self, entry)
        if entry["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner_module._Attempt, "epoch_done", epoch_done)


def _commit(monkeypatch, commit: str) -> None:
    monkeypatch.setattr(runner_module.env, "git_commit", lambda: commit)


def _without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "epoch_time_s"} for entry in history]


@pytest.fixture
def reference(make_cfg, tmp_path, monkeypatch) -> dict:
    """The record of the same run, never stopped (its records folder is then removed)."""
    _commit(monkeypatch, "c1")
    execute(make_cfg(*CONFIG))
    record, _ = _record(tmp_path)
    assert not _checkpoints(tmp_path)  # an ok run deletes its checkpoint
    shutil.rmtree(tmp_path / "records")
    assert record["history"][3]["lr"] < record["history"][2]["lr"]  # the scheduler acted at epoch 3
    return record


def _interrupted(make_cfg, tmp_path, monkeypatch, *overrides: str) -> dict:
    with monkeypatch.context() as patch:
        _stop_after(patch, STOP_AFTER)
        with pytest.raises(interrupt.RunInterrupted):
            execute(make_cfg(*CONFIG, *overrides))
    record, _ = _record(tmp_path)
    assert record["status"] == "interrupted" and record["epochs_run"] == STOP_AFTER
    return record


def test_resumed_run_equals_the_uninterrupted_run_bit_for_bit(make_cfg, tmp_path, monkeypatch, reference):
    stopped = _interrupted(make_cfg, tmp_path, monkeypatch)
    (checkpoint,) = _checkpoints(tmp_path)
    assert checkpoint.name == _record(tmp_path)[1].name.replace(".json", ".ckpt.pt")
    execute(make_cfg(*CONFIG))
    resumed, _ = _record(tmp_path)
    assert resumed["status"] == "ok" and resumed["resumed_from_epoch"] == STOP_AFTER
    assert "resumed_from_epoch" not in reference
    for key in ("val", "test", "best_epoch", "epochs_run", "config_hash"):
        assert resumed[key] == reference[key], key
    assert _without_times(resumed["history"]) == _without_times(reference["history"])
    assert resumed["history"][:STOP_AFTER] == stopped["history"]  # epoch times as those epochs ran
    assert resumed["train_time_total_s"] == pytest.approx(sum(e["epoch_time_s"] for e in resumed["history"]))
    assert not _checkpoints(tmp_path)  # deleted with the ok record


def test_run_stopped_again_keeps_every_epoch_in_its_record(make_cfg, tmp_path, monkeypatch, reference):
    _interrupted(make_cfg, tmp_path, monkeypatch)
    with monkeypatch.context() as patch:
        _stop_after(patch, 3)
        with pytest.raises(interrupt.RunInterrupted):
            execute(make_cfg(*CONFIG))
    record, _ = _record(tmp_path)
    assert record["resumed_from_epoch"] == STOP_AFTER and [e["epoch"] for e in record["history"]] == [1, 2, 3]
    execute(make_cfg(*CONFIG))
    resumed, _ = _record(tmp_path)
    assert resumed["resumed_from_epoch"] == 3 and resumed["test"] == reference["test"]


def test_checkpoint_of_other_code_is_not_used(make_cfg, tmp_path, monkeypatch, reference, caplog):
    _interrupted(make_cfg, tmp_path, monkeypatch)
    _commit(monkeypatch, "c2")
    with caplog.at_level(logging.INFO, logger="nac.harness.resume"):
        execute(make_cfg(*CONFIG))
    assert "saved by commit c1, the code is at c2; training from epoch 1" in caplog.text
    record, _ = _record(tmp_path)
    assert "resumed_from_epoch" not in record and record["git_commit"] == "c2"
    assert record["test"] == reference["test"] and _without_times(record["history"]) == _without_times(
        reference["history"]
    )
    assert not _checkpoints(tmp_path)


def test_force_deletes_the_checkpoint_and_starts_from_epoch_1(make_cfg, tmp_path, monkeypatch, reference):
    _interrupted(make_cfg, tmp_path, monkeypatch)
    # forced, without checkpoints, and stopped after epoch 1: nothing saved, nothing read, the old one gone
    with monkeypatch.context() as patch:
        _stop_after(patch, 1)
        with pytest.raises(interrupt.RunInterrupted):
            execute(make_cfg(*CONFIG, "force=true", "trainer.checkpoint=false"))
    record, _ = _record(tmp_path)
    assert "resumed_from_epoch" not in record and record["epochs_run"] == 1
    assert not _checkpoints(tmp_path)
    _interrupted(make_cfg, tmp_path, monkeypatch)  # a checkpoint of epoch 2 again
    execute(make_cfg(*CONFIG, "force=true"))  # forced, with checkpoints: trains from epoch 1
    record, _ = _record(tmp_path)
    assert "resumed_from_epoch" not in record and record["test"] == reference["test"]
    assert not _checkpoints(tmp_path)


def test_checkpoint_false_neither_writes_nor_reads_one(make_cfg, tmp_path, monkeypatch, reference):
    _interrupted(make_cfg, tmp_path, monkeypatch, "trainer.checkpoint=false")
    assert not _checkpoints(tmp_path)
    _interrupted(make_cfg, tmp_path, monkeypatch)  # from epoch 1: leaves a checkpoint of epoch 2
    execute(make_cfg(*CONFIG, "trainer.checkpoint=false"))
    record, _ = _record(tmp_path)  # one record file: trainer.checkpoint is not part of the identity
    assert "resumed_from_epoch" not in record and record["test"] == reference["test"]
    assert not _checkpoints(tmp_path)  # deleted with the ok record all the same


def test_checkpoint_setting_must_be_a_boolean(make_cfg):
    from nac.harness.errors import SetupError

    with pytest.raises(SetupError, match=r"trainer.checkpoint='yes' is not valid; use true or false"):
        execute(make_cfg("trainer.checkpoint=yes"))


def test_rng_states_restore_every_generator_the_rest_of_a_run_draws_from(tmp_path):
    """torch, NumPy, Python and each loader's data order draw again what they drew after the save,
    through a checkpoint file (torch.load with weights_only)."""
    import random

    import numpy as np
    import torch

    from nac.data.base import SequenceTensorDataset
    from nac.harness.resume import load_checkpoint, save_checkpoint
    from nac.harness.runner import make_loader
    from nac.harness.train import rng_states, set_rng_states

    class PerItem(SequenceTensorDataset):  # read item by item (the loader's other path)
        def __getitem__(self, i: int) -> dict:
            return super().__getitem__(i)

    tensors = (torch.randn(10, 3, 2), torch.zeros(10, 3), torch.ones(10, 3), torch.arange(10))
    loaders = [
        make_loader(SequenceTensorDataset(*tensors), 4, True, 0, 1),
        make_loader(PerItem(*tensors), 4, True, 0, 2),
    ]

    def draw() -> list:
        orders = [[batch["y"].tolist() for batch in loader] for loader in loaders]
        return [torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(), random.random(), orders]

    draw()
    np.random.randn()  # NumPy's cached Gaussian is part of its state
    save_checkpoint(tmp_path / "c.ckpt.pt", {"rng": rng_states(loaders, torch.device("cpu"))}, "c1")
    expected = draw()
    draw()
    set_rng_states(load_checkpoint(tmp_path / "c.ckpt.pt", "c1")["rng"], loaders, torch.device("cpu"))
    assert draw() == expected


@pytest.mark.slow
def test_killed_process_resumes_from_its_last_checkpoint(tmp_path):
    """SIGKILL (no record, no cleanup) after epoch 2 of a real ``nac-bench`` process; the next one continues."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, run_cli

    args = ["experiment=none", "model=lstm", "trainer.epochs=4", "dataset.builder.limit=600", "trainer.progress=false"]
    args += ["trainer.latency_samples=2", "threads=1"]
    done = run_cli(*args, f"paths.output_root={tmp_path / 'reference'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    reference, _ = _record(tmp_path / "reference")

    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nac", *args, f"paths.output_root={out}"], cwd=tmp_path, env=env, stdout=stdout
        )
    deadline = time.monotonic() + 120
    while "epoch 2/4" not in log.read_text():  # logged once the epoch's checkpoint is saved
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not list((out / "records").rglob("*.json"))  # killed: no record at all
    (checkpoint,) = _checkpoints(out)

    done = run_cli(*args, f"paths.output_root={out}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed, _ = _record(out)
    assert resumed["resumed_from_epoch"] in (2, 3)  # epoch 3 may have ended before the kill landed
    for key in ("val", "test", "best_epoch", "epochs_run", "config_hash"):
        assert resumed[key] == reference[key], key
    assert _without_times(resumed["history"]) == _without_times(reference["history"])
    assert not checkpoint.exists()

"""Resume (nac/harness/resume.py): which record counts as finished, and skip or claim the run's lock."""

from contextlib import ExitStack

import pytest

from nac.harness.lock import RunLocked, run_lock
from nac.harness.records import write_json_atomic
from nac.harness.resume import (
    checkpoint_path,
    discard_checkpoint,
    finished_record,
    load_checkpoint,
    save_checkpoint,
    skip_or_claim,
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "records" / "digits" / "clean" / "lstm" / "seed0-abc.json"


@pytest.mark.parametrize(
    ("status", "commit", "finished"),
    [
        ("ok", "c1", True),
        ("ok", "c2", False),
        ("failed", "c1", False),
        ("diverged", "c1", False),
        ("interrupted", "c1", False),
    ],
)
def test_only_an_ok_record_of_the_same_code_is_finished(path, status, commit, finished):
    write_json_atomic(path, {"status": status, "git_commit": commit, "val": {"accuracy": 0.5}})
    assert (finished_record(path, "c1") is not None) == finished


def test_missing_or_unreadable_record_is_not_finished(path):
    assert finished_record(path, "c1") is None
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert finished_record(path, "c1") is None


def _locked_elsewhere(path) -> bool:
    """Whether a second claim of the run's lock is refused right now."""
    try:
        with run_lock(path):
            return False
    except RunLocked:
        return True


def test_finished_run_is_skipped_without_taking_the_lock(path):
    write_json_atomic(path, {"status": "ok", "git_commit": "c1", "seed": 0})
    with ExitStack() as held:
        assert skip_or_claim(path, "c1", force=False, held=held) == {"status": "ok", "git_commit": "c1", "seed": 0}
        assert not _locked_elsewhere(path)


@pytest.mark.parametrize(
    ("record", "force"),
    [(None, False), ({"status": "failed", "git_commit": "c1"}, False), ({"status": "ok", "git_commit": "c1"}, True)],
)
def test_unfinished_or_forced_run_is_claimed_until_the_stack_closes(path, record, force):
    if record is not None:
        write_json_atomic(path, record)
    with ExitStack() as held:
        assert skip_or_claim(path, "c1", force=force, held=held) is None
        assert _locked_elsewhere(path)
    assert not _locked_elsewhere(path)


def test_run_trained_by_another_process_now_raises(path):
    with run_lock(path), ExitStack() as held, pytest.raises(RunLocked):
        skip_or_claim(path, "c1", force=False, held=held)


def test_run_finished_by_another_process_meanwhile_is_skipped(path, monkeypatch):
    """The record is read again once the lock is held: another process may have just finished the run."""
    from contextlib import contextmanager

    from nac.harness import resume

    @contextmanager
    def lock_after_the_other_process_finished(record_path):
        write_json_atomic(record_path, {"status": "ok", "git_commit": "c1"})
        with run_lock(record_path):
            yield

    monkeypatch.setattr(resume, "run_lock", lock_after_the_other_process_finished)
    with ExitStack() as held:
        assert skip_or_claim(path, "c1", force=False, held=held) == {"status": "ok", "git_commit": "c1"}


def test_checkpoint_beside_the_record_is_read_back_by_the_same_code_only(path, caplog):
    import logging

    import torch

    caplog.set_level(logging.INFO, logger="nac.harness.resume")
    ckpt = checkpoint_path(path)
    assert ckpt == path.parent / "seed0-abc.ckpt.pt"
    assert load_checkpoint(ckpt, "c1") is None  # none yet
    path.parent.mkdir(parents=True)
    save_checkpoint(ckpt, {"epoch": 2, "model": {"w": torch.arange(3.0)}, "history": [{"epoch": 1}]}, "c1")
    assert [p.name for p in path.parent.iterdir()] == [ckpt.name]  # no temporary file left
    state = load_checkpoint(ckpt, "c1")
    assert state["epoch"] == 2 and state["git_commit"] == "c1" and torch.equal(state["model"]["w"], torch.arange(3.0))
    assert load_checkpoint(ckpt, "c2") is None
    assert f"not resuming from {ckpt}: it was saved by commit c1, the code is at c2" in caplog.text
    save_checkpoint(ckpt, {"epoch": 2}, "unknown")
    assert load_checkpoint(ckpt, "unknown") is None  # outside git the code cannot be checked
    assert "the code is not in git" in caplog.text
    discard_checkpoint(ckpt)
    assert not ckpt.exists()
    discard_checkpoint(ckpt)  # nothing to delete is fine


def test_damaged_checkpoint_or_other_layout_is_not_used(path, caplog):
    import torch

    ckpt = checkpoint_path(path)
    path.parent.mkdir(parents=True)
    ckpt.write_bytes(b"torn")
    assert load_checkpoint(ckpt, "c1") is None and "cannot be read" in caplog.text
    torch.save({"format": 0, "git_commit": "c1"}, ckpt)
    assert load_checkpoint(ckpt, "c1") is None and "checkpoint format 0, expected 1" in caplog.text


def test_checkpoint_write_is_atomic(path, monkeypatch):
    """A write that fails part way leaves the previous checkpoint whole and no temporary file."""
    import torch

    ckpt = checkpoint_path(path)
    path.parent.mkdir(parents=True)
    save_checkpoint(ckpt, {"epoch": 1}, "c1")

    def torn_save(obj, file):
        open(file, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ckpt, {"epoch": 2}, "c1")
    monkeypatch.undo()
    assert load_checkpoint(ckpt, "c1")["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == [ckpt.name]

"""Records you can trust: an ok record is never replaced by a worse attempt, one process per run,
files readable by others, each run counted once."""

import json
import os
import stat
from pathlib import Path

import pytest

from nac.harness import runner as runner_module
from nac.harness.records import load_records, write_json_atomic
from nac.harness.runner import run
from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def _fixed_commit(monkeypatch):
    """Other people's edits in a shared checkout must not change the commit id between two runs."""
    monkeypatch.setattr(runner_module.env, "git_commit", lambda: "abc123")


def _files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "records").rglob("*.json"))


@pytest.mark.parametrize("ending", [KeyboardInterrupt, RuntimeError])
def test_forced_rerun_that_ends_worse_keeps_the_ok_record(make_cfg, tmp_path, monkeypatch, ending):
    run(make_cfg("seed=0"))
    (ok_file,) = _files(tmp_path)
    before = ok_file.read_text()

    def breaks(*args, **kwargs):
        raise ending("the second attempt breaks")

    monkeypatch.setattr(runner_module, "fit", breaks)
    with pytest.raises(ending):
        run(make_cfg("seed=0", "force=true"))
    assert ok_file.read_text() == before  # the finished record is untouched
    (attempt,) = [f for f in _files(tmp_path) if f != ok_file]
    assert attempt.name.startswith(ok_file.stem + ".attempt-")
    assert json.loads(attempt.read_text())["status"] == ("interrupted" if ending is KeyboardInterrupt else "failed")
    (counted,) = load_records(tmp_path / "records")  # the run counts once, with its ok record
    assert counted["status"] == "ok" and counted["_path"] == str(ok_file)


def test_forced_rerun_that_succeeds_replaces_the_record(make_cfg, tmp_path):
    run(make_cfg("seed=0"))
    (ok_file,) = _files(tmp_path)
    first = json.loads(ok_file.read_text())["started"], ok_file.stat().st_mtime_ns
    run(make_cfg("seed=0", "force=true"))
    assert _files(tmp_path) == [ok_file] and ok_file.stat().st_mtime_ns != first[1]


def test_load_records_counts_each_run_once(tmp_path):
    base = {"schema": 1, "model": "m"}
    write_json_atomic(tmp_path / "a" / "seed0-h.json", {**base, "status": "ok"})
    write_json_atomic(tmp_path / "a" / "seed0-h.attempt-20250101T000000000000Z-1.json", {**base, "status": "failed"})
    write_json_atomic(tmp_path / "b" / "seed0-h.attempt-20250101T000000000000Z-1.json", {**base, "status": "failed"})
    write_json_atomic(tmp_path / "b" / "seed0-h.attempt-20250102T000000000000Z-2.json", {**base, "status": "diverged"})
    records = load_records(tmp_path)
    assert sorted((Path(r["_path"]).parent.name, r["status"]) for r in records) == [("a", "ok"), ("b", "diverged")]


def test_records_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {"schema": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_second_process_of_the_same_run_does_not_train(make_cfg, tmp_path, monkeypatch):
    """While a run trains (holding its lock), the same run in another process stops at once with
    one line naming the holder, exit 4, and leaves the first run's record alone."""
    from nac.harness.lock import run_lock

    run(make_cfg("seed=0"))
    (ok_file,) = _files(tmp_path)
    before = ok_file.read_text()
    with run_lock(ok_file):  # this test process plays the one that is training
        proc = run_cli(
            "experiment=none",
            f"paths.output_root={tmp_path}",
            "trainer.epochs=2",
            "trainer.limit_train_batches=3",
            "dataset.builder.limit=200",
            "trainer.progress=false",
            "trainer.latency_samples=4",
            "force=true",
            cwd=tmp_path,
        )
    assert proc.returncode == 4, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("nac-bench: error:") and f"pid {os.getpid()}" in line and "already running" in line
    assert ok_file.read_text() == before and _files(tmp_path) == [ok_file]


def test_lock_is_released_when_the_run_ends(make_cfg, tmp_path, monkeypatch):
    from nac.harness.lock import RunLocked, run_lock

    run(make_cfg("seed=0"))
    (ok_file,) = _files(tmp_path)
    with run_lock(ok_file):
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            run(make_cfg("seed=0", "force=true"))
    run(make_cfg("seed=0", "force=true"))  # free again

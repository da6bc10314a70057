"""A run's identity: its data (fingerprint of the files read), its code (commit plus a hash of the
uncommitted changes) and the settings that change its numbers (threads in, progress bars out)."""

import hashlib
import subprocess
from pathlib import Path

import pytest
import torch

from nac.harness import environment as env
from nac.harness import runner as runner_module
from nac.harness.records import load_records
from nac.harness.runner import run


@pytest.fixture
def reads_a_data_file(monkeypatch):
    """The digits builder, as if it had read ``<data root>/digits/values.csv`` (listed in source_files)."""
    monkeypatch.setattr(runner_module.env, "git_commit", lambda: "abc123")
    real = runner_module.build_splits

    def build(cfg):
        splits = real(cfg)
        splits.meta.source_files = [str(Path(cfg.paths.data_root) / "digits" / "values.csv")]
        return splits

    monkeypatch.setattr(runner_module, "build_splits", build)


def _data_root(tmp_path: Path, name: str, content: str) -> Path:
    (tmp_path / name / "digits").mkdir(parents=True, exist_ok=True)
    (tmp_path / name / "digits" / "values.csv").write_text(content)
    return tmp_path / name


def _trains_again(make_cfg, monkeypatch, *overrides) -> bool:
    """Whether running the config trains (True) or is skipped as already finished (False)."""

    def trains(*args, **kwargs):
        raise RuntimeError("trained")

    with monkeypatch.context() as patch:
        patch.setattr(runner_module, "fit", trains)
        try:
            run(make_cfg(*overrides))
        except RuntimeError:
            return True
    return False


def test_record_holds_the_data_fingerprint_and_other_data_reruns(make_cfg, tmp_path, monkeypatch, reads_a_data_file):
    root_a = _data_root(tmp_path, "a", "1,2,3\n")
    run(make_cfg(f"paths.data_root={root_a}"))
    (rec,) = load_records(tmp_path / "records")
    assert rec["data"]["files"] == {"digits/values.csv": {"size": 6, "sha256": hashlib.sha256(b"1,2,3\n").hexdigest()}}
    assert not _trains_again(make_cfg, monkeypatch, f"paths.data_root={root_a}")  # same data: finished
    root_b = _data_root(tmp_path, "b", "1,2,4\n")  # another root with other content
    assert _trains_again(make_cfg, monkeypatch, f"paths.data_root={root_b}")
    root_copy = _data_root(tmp_path, "copy", "1,2,3\n")  # a byte-identical copy is the same data
    assert not _trains_again(make_cfg, monkeypatch, f"paths.data_root={root_copy}")
    (root_a / "digits" / "values.csv").write_text("1,2,3,4\n")  # the file changed in place
    assert _trains_again(make_cfg, monkeypatch, f"paths.data_root={root_a}")


def test_threads_are_in_the_identity_progress_bars_are_not(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module.env, "git_commit", lambda: "abc123")
    threads = torch.get_num_threads()
    try:
        run(make_cfg("threads=1", "trainer.progress=false"))
        assert not _trains_again(make_cfg, monkeypatch, "threads=1", "trainer.progress=true")
        assert _trains_again(make_cfg, monkeypatch, "threads=2", "trainer.progress=false")
    finally:
        torch.set_num_threads(threads)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


def test_commit_id_tells_uncommitted_states_apart(tmp_path):
    _git(tmp_path, "init", "-q")
    code = tmp_path / "nac" / "code.py"
    code.parent.mkdir()
    code.write_text("a = 1\n")
    (tmp_path / "README.md").write_text("docs\n")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    clean = env.git_commit(tmp_path)
    assert len(clean) == 40 and "dirty" not in clean
    code.write_text("a = 2\n")
    first_edit = env.git_commit(tmp_path)
    code.write_text("a = 3\n")
    second_edit = env.git_commit(tmp_path)
    assert first_edit.startswith(clean + "-dirty-") and second_edit.startswith(clean + "-dirty-")
    assert first_edit != second_edit  # two different uncommitted states never share an id
    new_file = tmp_path / "configs" / "new.yaml"  # a new file git does not ignore
    new_file.parent.mkdir()
    new_file.write_text("b: 1\n")
    with_new_file = env.git_commit(tmp_path)
    new_file.write_text("b: 2\n")
    assert len({second_edit, with_new_file, env.git_commit(tmp_path)}) == 3
    new_file.unlink()
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "run.json").write_text("{}")  # ignored files do not count
    assert env.git_commit(tmp_path) == second_edit
    (tmp_path / "README.md").write_text("edited docs\n")  # nor do edits outside the code
    (tmp_path / "notes.md").write_text("new notes\n")
    assert env.git_commit(tmp_path) == second_edit
    code.write_text("a = 1\n")
    assert env.git_commit(tmp_path) == clean

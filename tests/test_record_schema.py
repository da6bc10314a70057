"""The typed record (nac/harness/record_schema.py): the runner writes exactly its fields, in its order,
with their types; docs/RECORDS.md documents every field and status."""

import json
import re

import pytest

from nac.harness import runner as runner_module
from nac.harness.record_schema import STATUSES, RunRecord, field_names
from nac.harness.records import RECORD_SCHEMA
from nac.harness.runner import execute
from tests.conftest import ROOT

#: what a record written at the start of a run holds, before anything is measured
START = dict(
    model="lstm",
    dataset="digits",
    protocol="clean",
    fold=None,
    seed=0,
    tag="",
    started="2026-01-01T00:00:00",
    device="cpu",
    git_commit="abc",
    versions={"torch": "2"},
    config={"seed": 0},
)


def test_new_record_writes_the_start_fields_only_and_fold_even_when_none():
    out = RunRecord(**START).to_dict()
    assert list(out) == [
        "schema",
        "status",
        "model",
        "dataset",
        "protocol",
        "fold",
        "seed",
        "tag",
        "started",
        "device",
        "git_commit",
        "versions",
        "config",
    ]
    assert out["schema"] == RECORD_SCHEMA and out["status"] == "failed" and out["fold"] is None


def test_set_fields_follow_in_declaration_order():
    record = RunRecord(**START)
    record.update(error="boom", test={"accuracy": 0.5}, data={"files": {}, "digest": ""})
    assert list(record.to_dict())[-3:] == ["data", "test", "error"]


def test_bad_status_and_unknown_field_are_refused():
    with pytest.raises(ValueError, match="status='done' is not a record status"):
        RunRecord(**START, status="done")
    with pytest.raises(TypeError, match=r"no field\(s\) \['accuracy'\]"):
        RunRecord(**START).update(accuracy=1.0)


def test_runner_writes_the_schema(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module.env, "git_commit", lambda: "abc123")
    returned = execute(make_cfg("seed=0"))
    (file,) = (tmp_path / "records").rglob("*.json")
    written = json.loads(file.read_text())
    assert json.loads(json.dumps(returned)) == written
    order = field_names()
    assert list(written) == [name for name in order if name in written]
    optional = {"tests", "evaluations", "resumed_from_epoch", "predictions_file", "error", "traceback"}
    assert set(order) - set(written) == optional  # an ok record without named test sets or evaluations
    assert RunRecord(**written).to_dict() == written  # the JSON object reads back into the dataclass
    assert isinstance(written["parameters"], int) and isinstance(written["latency_per_sample_s"], float)
    assert written["epochs_run"] == len(written["history"]) and written["status"] == "ok"


def test_records_md_documents_every_field_and_status():
    text = (ROOT / "docs" / "RECORDS.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    assert set(field_names()) <= documented, f"undocumented: {sorted(set(field_names()) - documented)}"
    assert all(f"`{status}`" in text for status in STATUSES)
    assert f"RECORD_SCHEMA = {RECORD_SCHEMA}" in text or f"schema {RECORD_SCHEMA}" in text

"""The run record's fields, typed: :class:`RunRecord` (documented field by field in docs/RECORDS.md).

The runner fills a :class:`RunRecord` as the run goes and writes ``to_dict()`` (JSON keys in field
order). Fields above ``data`` are known when the run starts and are always written; every later
field is written once it is set (None means "not set": a failed run has no ``test``, a run without
named test sets no ``tests``). The layout is versioned by :data:`RECORD_SCHEMA`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nac.harness.records import RECORD_SCHEMA

#: the values of ``status``
STATUSES = ("ok", "failed", "diverged", "interrupted")
#: fields written even when None (``fold`` is None outside the paper protocol's folds)
_ALWAYS = (
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
)

Metrics = dict[str, float]


@dataclass
class RunRecord:
    """One attempt of one run: what ran, on what, with which code, and what it measured."""

    # what ran (known at the start)
    model: str
    dataset: str
    protocol: str
    fold: int | None
    seed: int
    tag: str
    started: str
    device: str
    git_commit: str
    versions: dict[str, str]
    config: dict[str, Any]
    schema: int = RECORD_SCHEMA
    status: str = "failed"
    # identity (once the data is fingerprinted)
    data: dict[str, Any] | None = None
    config_hash: str | None = None
    group_hash: str | None = None
    # the task and the model (once both are built)
    task: str | None = None
    metric: str | None = None
    metric_mode: str | None = None
    dataset_meta: dict[str, Any] | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    parameters: int | None = None
    parameters_sequence_model: int | None = None
    # results (once trained and tested)
    tests: dict[str, Metrics] | None = None
    evaluations: dict[str, Any] | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    resumed_from_epoch: int | None = None  # set only when the run continued from its checkpoint
    history: list[dict[str, float]] | None = None
    val: Metrics | None = None
    test: Metrics | None = None
    train_time_per_epoch_s: float | None = None
    train_time_total_s: float | None = None
    latency_per_sample_s: float | None = None
    predictions_file: str | None = None
    # how it ended (a run that did not finish ok)
    error: str | None = None
    traceback: str | None = None
    # written with every save
    peak_memory_mb: float | None = None
    peak_memory_method: str | None = None
    wall_time_s: float | None = None
    finished: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is not a record status; use one of {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the record: the always-written fields in the order of :data:`_ALWAYS`, then
        every other set field in declaration order."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {name: values.pop(name) for name in _ALWAYS}
        out.update((name, value) for name, value in values.items() if value is not None)
        return out

    def update(self, **values: Any) -> None:
        """Set several fields at once (unknown names are refused)."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(
                f"RunRecord has no field(s) {unknown}; add them to nac/harness/record_schema.py and docs/RECORDS.md"
            )
        for name, value in values.items():
            setattr(self, name, value)
        self.__post_init__()


def field_names() -> list[str]:
    """Every JSON key a record can have, in the order :meth:`RunRecord.to_dict` writes them."""
    names = [f.name for f in dataclasses.fields(RunRecord)]
    return [*_ALWAYS, *(n for n in names if n not in _ALWAYS)]

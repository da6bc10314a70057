"""The one interface every dataset builder follows.

A builder is a function ``build(protocol: Mapping, data_root: Path, seed: int, cache_dir: Path,
**options)`` returning :class:`DatasetSplits`: train / validation / test datasets plus :class:`DatasetMeta`.
Every item is a dict with ``x`` (L, C) float, ``t`` (L,) float elapsed time since the previous
observation, ``mask`` (L,) bool and ``y``; :func:`collate_sequences` pads a list of items
(right padding) into a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class DatasetMeta:
    """What the runner needs to know about a dataset besides its samples."""

    name: str
    input_dim: int
    output_dim: int
    task: Literal["classification", "regression"]
    metric: str  # primary metric, e.g. "accuracy" or "rmse"
    metric_mode: Literal["max", "min"]
    protocol: str
    time_unit: str = "step"
    label_granularity: Literal["sequence", "step"] = "sequence"
    fold: int | None = None
    #: metrics (not the training loss) are computed on ``pred * target_scale`` and ``y * target_scale``,
    #: e.g. a RUL target trained as RUL / 125 but reported in cycles
    target_scale: float = 1.0
    #: every file the builder read (absolute paths), fingerprinted by the runner (nac/data/sources.py)
    source_files: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


#: a post-training evaluation: ``evaluate(model, device) -> {figure: value}`` (e.g. closed-loop driving)
Evaluation = Callable[[torch.nn.Module, torch.device], dict]


@dataclass
class DatasetSplits:
    """Train / validation / test datasets, plus optional named test sets and evaluations.

    ``tests``: named test sets (e.g. one per held-out bearing); when given, the record holds
    ``tests[name]`` metrics for each and tables report one row per name (``<dataset>/<name>``).
    ``evaluations``: callables run once on the selected model after testing; their figures go to
    the record's ``evaluations[name]``.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    meta: DatasetMeta
    tests: dict[str, Dataset] = field(default_factory=dict)
    evaluations: dict[str, Evaluation] = field(default_factory=dict)


class SequenceTensorDataset(Dataset):
    """Pre-padded arrays: x (N, L, C), t (N, L), mask (N, L), y (N, ...); ``windows``, when given,
    says where each sample comes from (e.g. ``(recording, start row)``, :mod:`nac.data.windows`)."""

    def __init__(self, x, t, mask, y, windows: list | None = None):
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        self.t = torch.as_tensor(np.asarray(t), dtype=torch.float32)
        self.mask = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        y = np.asarray(y)
        self.y = torch.as_tensor(y, dtype=torch.long if y.dtype.kind in "iub" else torch.float32)
        n = len(self.x)
        if not (len(self.t) == len(self.mask) == len(self.y) == n):
            raise ValueError("x, t, mask and y must have the same number of samples")
        if self.x.shape[:2] != self.t.shape or self.t.shape != self.mask.shape:
            raise ValueError(
                f"x {tuple(self.x.shape)}, t {tuple(self.t.shape)} and mask "
                f"{tuple(self.mask.shape)} must agree on (N, L)"
            )
        if windows is not None:
            if len(windows) != n:
                raise ValueError(f"windows has {len(windows)} entries for {n} samples")
            self.windows = list(windows)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "t": self.t[i], "mask": self.mask[i], "y": self.y[i]}

    def subset(self, indices) -> SequenceTensorDataset:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        windows = [self.windows[i] for i in idx.tolist()] if hasattr(self, "windows") else None
        return SequenceTensorDataset(self.x[idx], self.t[idx], self.mask[idx], self.y[idx], windows=windows)


def collate_sequences(items: list[dict]) -> dict:
    """Stack items into a batch, right-padding x, t and mask to the longest sequence."""
    length = max(item["x"].shape[0] for item in items)
    out = {}
    for key in ("x", "t", "mask"):
        tensors = [item[key] for item in items]
        pads = []
        for tensor in tensors:
            missing = length - tensor.shape[0]
            if missing:
                pad = torch.zeros((missing,) + tuple(tensor.shape[1:]), dtype=tensor.dtype)
                tensor = torch.cat([tensor, pad])
            pads.append(tensor)
        out[key] = torch.stack(pads)
    out["y"] = torch.stack([torch.as_tensor(item["y"]) for item in items])
    return out

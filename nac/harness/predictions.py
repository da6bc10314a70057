"""Test-set predictions of a run, for plots: ``<record stem>.predictions.npz`` beside its record.

Written when ``trainer.save_predictions`` is true, after testing, by the selected (best-validation)
model: for the primary test set (``test``) and each named test set (``DatasetSplits.tests``), the
predictions and targets in target units (times ``target_scale``; classification: the predicted and
true class), one row per test sample (per valid step for per-step labels), in the test set's order.

File layout (``numpy.load``, no pickles): ``info`` (JSON: dataset, model, seed, tag, metric,
task, target_scale, record file, set names), and per set ``pred__<name>``, ``true__<name>`` and, where
the dataset lists them (C-MAPSS: ``(engine, last row)`` per sample), ``index__<name>``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nac.harness.errors import SetupError
from nac.harness.metrics import asymmetric_score, flatten_steps

SUFFIX = ".predictions.npz"


@dataclass
class SetPredictions:
    """One test set: predictions, targets (target units) and optional sample ids (N, k)."""

    pred: np.ndarray
    true: np.ndarray
    index: np.ndarray | None = None


def predictions_path(record_path: Path | str) -> Path:
    """``<record stem>.predictions.npz`` beside the record ``<stem>.json``."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + SUFFIX)


def requested(trainer: Mapping) -> bool:
    """``trainer.save_predictions`` (false when absent); a SetupError for anything but true/false."""
    value = trainer.get("save_predictions", False)
    if not isinstance(value, bool):
        raise SetupError(f"trainer.save_predictions={value!r} is not valid; use true or false")
    return value


@torch.no_grad()
def predict(
    model: torch.nn.Module, loader, device: torch.device, task: str, per_step: bool, target_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, targets) over a loader in its order (eval mode), in target units."""
    model.eval()
    preds, trues = [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        pred, y = flatten_steps(model(batch["x"], batch["t"], batch["mask"]), batch["y"], batch["mask"], per_step)
        if task == "classification":
            pred = pred.argmax(-1)
        else:
            pred, y = pred.reshape(y.shape).double() * target_scale, y.double() * target_scale
        preds.append(pred.cpu().numpy())
        trues.append(y.cpu().numpy())
    return np.concatenate(preds), np.concatenate(trues)


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and the NASA/PHM08 score (``nac.harness.metrics``) of ``pred - true``."""
    error = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return {
        "rmse": math.sqrt(float(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "score": float(asymmetric_score(torch.from_numpy(error))),
    }


def save_predictions(
    path: Path | str,
    model: torch.nn.Module,
    datasets: Mapping,
    make_loader: Callable,
    device: torch.device,
    meta,
    per_step: bool,
    info: Mapping,
) -> Path:
    """Predict every dataset of ``datasets`` (name -> dataset; each distinct dataset once) and write
    them to ``path`` atomically; returns ``path``. ``make_loader(dataset)`` gives its ordered loader."""
    done: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    sets = {}
    for name, dataset in datasets.items():
        if id(dataset) not in done:
            done[id(dataset)] = predict(model, make_loader(dataset), device, meta.task, per_step, meta.target_scale)
        pred, true = done[id(dataset)]
        windows = getattr(dataset, "windows", None)
        index = np.asarray(windows) if windows is not None and not per_step and len(windows) == len(pred) else None
        sets[name] = SetPredictions(pred, true, index)
    path = Path(path)
    subset = {"subset": meta.extra["subset"]} if "subset" in (meta.extra or {}) else {}  # C-MAPSS
    return write_predictions(
        path,
        sets,
        {
            **info,
            **subset,
            "task": meta.task,
            "metric": meta.metric,
            "target_scale": float(meta.target_scale),
            "record": path.name.removesuffix(SUFFIX) + ".json",
        },
    )


def write_predictions(path: Path | str, sets: Mapping[str, SetPredictions], info: Mapping) -> Path:
    """Write ``sets`` and ``info`` (JSON-able) as one ``.npz`` (temporary file, then renamed)."""
    path = Path(path)
    bad = [name for name in sets if not name or "__" in name]
    if bad:
        raise ValueError(f"test set names {bad} cannot be stored: use non-empty names without '__'")
    arrays = {"info": np.array(json.dumps({**info, "sets": list(sets)}, default=str))}
    for name, values in sets.items():
        arrays[f"pred__{name}"], arrays[f"true__{name}"] = np.asarray(values.pred), np.asarray(values.true)
        if values.index is not None:
            arrays[f"index__{name}"] = np.asarray(values.index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp.npz")
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_predictions(path: Path | str) -> tuple[dict, dict[str, SetPredictions]]:
    """(info, sets) of a predictions file; a ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            sets = {
                name: SetPredictions(
                    data[f"pred__{name}"],
                    data[f"true__{name}"],
                    data[f"index__{name}"] if f"index__{name}" in data.files else None,
                )
                for name in info["sets"]
            }
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(
            f"{path} is not a predictions file written with trainer.save_predictions=true "
            f"(<record stem>{SUFFIX}): {type(err).__name__}: {err}"
        ) from None
    return info, sets

"""Split helpers shared by dataset builders (stratified hold-out, k-fold, windows)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split


def check_protocol(dataset: str, protocol: Mapping, supported: tuple[str, ...]) -> str:
    """Return the protocol name, or raise a ValueError listing what this dataset supports."""
    name = protocol.get("name")
    if name not in supported:
        raise ValueError(f"dataset {dataset!r} has no protocol {name!r}; choose protocol= one of {list(supported)}")
    return name


def stratified_holdout(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Indices (train, val, test), each stratified by label."""
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def _check_fold(n_folds: int, fold: int) -> None:
    if not 0 <= fold < n_folds:
        raise ValueError(f"protocol.fold={fold} must be in [0, {n_folds - 1}]")


def stratified_fold(labels: np.ndarray, n_folds: int, fold: int, seed: int):
    """Indices (train, held_out) of fold ``fold`` of a shuffled stratified k-fold."""
    _check_fold(n_folds, fold)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, held_out = list(folds.split(np.zeros(len(labels)), labels))[fold]
    return train, held_out


def kfold(n: int, n_folds: int, fold: int, seed: int):
    """Indices (train, held_out), both sorted, of fold ``fold`` of a shuffled k-fold over ``n`` rows."""
    _check_fold(n_folds, fold)
    train, held_out = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.arange(n)))[fold]
    return np.sort(train), np.sort(held_out)


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices of the windows of ``window`` steps every ``stride`` steps that fit in ``length``."""
    return np.arange(0, length - window + 1, stride) if length >= window else np.zeros(0, dtype=np.int64)

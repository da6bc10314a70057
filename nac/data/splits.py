"""Split helpers shared by dataset builders: stratified hold-out, one k-fold (stratified or not) and the
paper protocol's use of it, and one split over groups (recordings, episodes, engines)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from nac.data.protocols import Protocol
from nac.data.windows import window_starts  # noqa: F401  (re-exported: builders imported it from here)


def stratified_holdout(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Indices (train, val, test), each stratified by label."""
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def kfold(n: int, n_folds: int, fold: int, seed: int, labels: np.ndarray | None = None):
    """Indices (train, held_out), both sorted, of fold ``fold`` of a shuffled k-fold over ``n`` rows,
    stratified by ``labels`` when given (scikit-learn's ``StratifiedKFold``, else ``KFold``)."""
    if not 0 <= fold < n_folds:
        raise ValueError(f"protocol.fold={fold} must be in [0, {n_folds - 1}]")
    if labels is None:
        folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.arange(n))
    else:
        folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n), labels)
    train, held_out = list(folds)[fold]
    return np.sort(train), np.sort(held_out)


def stratified_fold(labels: np.ndarray, n_folds: int, fold: int, seed: int):
    """Indices (train, held_out) of fold ``fold`` of a shuffled stratified k-fold."""
    return kfold(len(labels), n_folds, fold, seed, labels=labels)


def paper_fold(protocol: Protocol, n: int, labels: np.ndarray | None = None):
    """Indices (train, held_out) of the paper protocol's fold: ``protocol.fold`` of ``protocol.n_folds``."""
    return kfold(n, protocol.n_folds, protocol.fold, protocol.split_seed, labels=labels)


def paper_splits(dataset, protocol: Protocol, labels: np.ndarray | None = None) -> tuple:
    """(train, validation, test) of the paper protocol: the training folds, then the held-out fold twice
    (the checkpoint is chosen on the fold that is reported). ``dataset`` has ``len`` and ``subset``;
    ``labels``, when given, stratify the folds."""
    train, held_out = paper_fold(protocol, len(dataset), labels)
    return dataset.subset(train), dataset.subset(held_out), dataset.subset(held_out)


def group_counts(n: int, val_fraction: float, test_fraction: float | None) -> tuple[int, int]:
    """(test, validation) group counts: ``round(fraction * n)``, at least 1 (no test group when
    ``test_fraction`` is None), capped so that validation and training keep at least one group each."""
    n_test = 0 if test_fraction is None else min(max(1, round(test_fraction * n)), n - 2)
    n_val = min(max(1, round(val_fraction * n)), n - n_test - 1)
    return n_test, n_val


def group_split(
    groups: Sequence, val_fraction: float, test_fraction: float | None, seed: int, kind: str = "group", hint: str = ""
) -> tuple[list, list, list]:
    """Groups (train, val, test), each sorted: the sorted groups shuffled with ``seed``, the first
    :func:`group_counts` test, the next validation, the rest training (``test_fraction`` None: no test
    groups). ``kind`` and ``hint`` word the error when there are too few groups (3, or 2 without test)."""
    groups = sorted(groups)
    minimum = 2 if test_fraction is None else 3
    if len(groups) < minimum:
        raise ValueError(
            f"the clean protocol splits by {kind} and needs at least {minimum} {kind}s; got "
            f"{len(groups)}: {groups}{hint}"
        )
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    n_test, n_val = group_counts(len(groups), val_fraction, test_fraction)
    return (sorted(order[n_test + n_val :]), sorted(order[n_test : n_test + n_val]), sorted(order[:n_test]))

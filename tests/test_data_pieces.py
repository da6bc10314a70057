"""The shared pieces dataset builders compose (nac/data/{protocols,splits,windows,cache}.py), each
against an independent reference: the YAML protocol files, scikit-learn's splitters, plain loops."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sklearn.model_selection import KFold, StratifiedKFold

from nac.data.cache import cache_key, cache_path, cached, load_npy, save_atomic
from nac.data.protocols import DEFAULTS, Protocol
from nac.data.splits import group_split, kfold, paper_fold
from nac.data.windows import tiling_starts, window_ends, window_starts, windows_dataset
from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["clean", "paper"])
def test_protocol_defaults_are_the_yaml_files(name):
    stored = yaml.safe_load((ROOT / "configs" / "protocol" / f"{name}.yaml").read_text())
    parsed = Protocol.parse("digits", {"name": name})
    for key, value in stored.items():
        assert getattr(parsed, key) == value, key
    assert {k: v for k, v in DEFAULTS[name].items() if k in stored} == {k: v for k, v in stored.items() if k != "name"}


def test_protocol_parse_values_and_errors():
    parsed = Protocol.parse("par", {"name": "paper", "fold": "3", "n_folds": 4, "split_seed": 7})
    assert parsed == Protocol("paper", n_folds=4, fold=3, split_seed=7, val_fraction=0.2, test_fraction=0.2)
    assert parsed.is_paper and not Protocol.parse("par", {"name": "clean"}).is_paper
    only_clean = r"^dataset 'cmapss' has no protocol 'paper'; choose protocol= one of \['clean'\]$"
    with pytest.raises(ValueError, match=only_clean):
        Protocol.parse("cmapss", {"name": "paper"}, ("clean",))
    with pytest.raises(ValueError, match=r"no protocol 'grouped'"):
        Protocol.parse("digits", {"name": "grouped"})
    with pytest.raises(ValueError, match=r"protocol.fold=5 must be in \[0, 4\]"):
        Protocol.parse("digits", {"name": "paper", "fold": 5})


@pytest.mark.parametrize("stratified", [False, True])
def test_kfold_is_sklearns_fold(stratified):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 47)
    for fold in range(5):
        train, held = kfold(47, 5, fold, 11, labels=labels if stratified else None)
        splitter = (StratifiedKFold if stratified else KFold)(n_splits=5, shuffle=True, random_state=11)
        ref_train, ref_held = list(splitter.split(np.zeros(47), labels))[fold]
        assert np.array_equal(train, np.sort(ref_train)) and np.array_equal(held, np.sort(ref_held))
        assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(47))
    protocol = Protocol.parse("x", {"name": "paper", "fold": 2, "split_seed": 11})
    assert all(np.array_equal(a, b) for a, b in zip(paper_fold(protocol, 47), kfold(47, 5, 2, 11)))
    with pytest.raises(ValueError, match="protocol.fold=5"):
        kfold(47, 5, 5, 11)


def _reference_group_split(groups, val_fraction, test_fraction, seed):
    """The rule written out: shuffle the sorted groups; test, then validation, then training."""
    order = sorted(groups)
    order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    n = len(order)
    n_test = 0 if test_fraction is None else max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n))
    while n_test + n_val > n - 1:  # keep one training group: give up validation groups first, then test groups
        if n_val > 1:
            n_val -= 1
        else:
            n_test -= 1
    return sorted(order[n_test + n_val :]), sorted(order[n_test : n_test + n_val]), sorted(order[:n_test])


@pytest.mark.parametrize("n", [3, 4, 7, 25, 100])
@pytest.mark.parametrize("fractions", [(0.2, 0.2), (0.3, 0.25), (0.2, None), (0.2, 0.0), (0.5, 0.5)])
def test_group_split_against_the_rule(n, fractions):
    groups = [f"g{i:03d}" for i in range(n)][::-1]
    for seed in range(3):
        got = group_split(groups, *fractions, seed)
        assert got == _reference_group_split(groups, *fractions, seed)
        train, val, test = got
        assert sorted(train + val + test) == sorted(groups) and train and val
        assert bool(test) == (fractions[1] is not None)


def test_group_split_too_few_groups():
    with pytest.raises(ValueError, match=r"splits by episode and needs at least 3 episodes; got 2: \[0, 1\]. more"):
        group_split([1, 0], 0.2, 0.2, 0, kind="episode", hint=". more")
    train, val, test = group_split([1, 0], 0.2, None, 0)  # no test split: two groups suffice
    assert sorted(train + val) == [0, 1] and len(val) == 1 and test == []
    with pytest.raises(ValueError, match="at least 2 engines; got 1"):
        group_split([1], 0.2, None, 0, kind="engine")


def _reference_windows(groups, window, starts, label):
    """Plain loops: every window row by row, padding rows zero with mask False."""
    out = []
    for key, x, t, y in groups:
        for start in starts(len(x)):
            wx, wt, wm, wy = np.zeros((window, x.shape[1])), np.zeros(window), np.zeros(window, bool), np.zeros(window)
            last = None
            for j in range(window):
                if start + j < len(x):
                    wx[j], wt[j], wm[j], wy[j] = x[start + j], t[start + j], True, y[start + j]
                    last = start + j
            out.append((wx, wt, wm, wy if label == "step" else y[last], (key, start), (key, last)))
    return out


@pytest.mark.parametrize("label", ["step", "last"])
@pytest.mark.parametrize("kind", ["fit", "tile", "ends"])
def test_windows_against_plain_loops(kind, label):
    rng = np.random.default_rng(1)
    groups = [(f"r{i}", rng.normal(size=(n, 3)), rng.random(n), rng.normal(size=n)) for i, n in enumerate([11, 4, 23])]
    starts = {
        "fit": lambda n: window_starts(n, 6, 4),
        "tile": lambda n: tiling_starts(n, 6),
        "ends": lambda n: np.maximum(0, window_ends(n, 6, 3) - 5),
    }[kind]
    origin = "end" if kind == "ends" else "start"
    got = windows_dataset(groups, 6, starts, label=label, origin=origin)
    ref = _reference_windows(groups, 6, starts, label)
    assert len(got) == len(ref) > 0
    for i, (wx, wt, wm, wy, from_start, from_end) in enumerate(ref):
        assert np.array_equal(got.x[i].numpy(), wx.astype(np.float32))
        assert np.array_equal(got.t[i].numpy(), wt.astype(np.float32))
        assert np.array_equal(got.mask[i].numpy(), wm)
        assert np.array_equal(got.y[i].numpy(), np.asarray(wy, np.float32))
        assert got.windows[i] == (from_end if origin == "end" else from_start)
    limited = windows_dataset(groups, 6, starts, label=label, origin=origin, limit=2)
    assert len(limited) == 2 and limited.windows == got.windows[:2]
    assert limited.subset([1]).windows == [got.windows[1]]


def test_window_helpers_and_short_groups():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6] and window_starts(3, 4, 1).tolist() == []
    assert tiling_starts(10, 4).tolist() == [0, 4, 8]
    assert window_ends(35, 30, 2).tolist() == [30, 32, 34] and window_ends(12, 30, 1).tolist() == [11]
    short = [("a", np.ones((3, 1)), np.ones(3), np.ones(3))]
    with pytest.raises(ValueError, match=r"recordings \['a'\] are all shorter than window=4"):
        windows_dataset(short, 4, lambda n: window_starts(n, 4, 1), what="recordings")


def test_cached_builds_once_and_rebuilds_a_torn_file(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5), "b": np.ones(2), "derived": np.zeros(1)}

    path = tmp_path / "c" / "x.npz"
    first, hit1 = cached(path, ("a", "b"), build)
    second, hit2 = cached(path, ("a", "b"), build)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    assert sorted(second) == ["a", "b"] and np.array_equal(second["a"], first["a"])
    path.write_bytes(b"torn")
    third, hit3 = cached(path, ("a", "b"), build)
    assert (hit3, len(calls)) == (False, 2) and cached(path, ("a", "b"), build)[1]
    save_atomic(path, {"a": np.arange(5)})  # written by other code: key b missing
    assert cached(path, ("a", "b"), build)[1] is False and len(calls) == 3
    assert cached(None, ("a",), build)[1] is False and len(calls) == 4


def test_cache_path_and_load_npy(tmp_path):
    assert cache_path(None, "udacity", "bands", ".npy", v=1) is None
    path = cache_path(tmp_path, "udacity", "bands", ".npy", v=1, limit=None)
    assert path.parent == tmp_path / "udacity" and path.name == f"bands_{cache_key(v=1, limit=None)}.npy"
    assert path != cache_path(tmp_path, "udacity", "bands", ".npy", v=2, limit=None)
    assert load_npy(path, (2, 3)) is None  # absent
    save_atomic(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    loaded = load_npy(path, (2, 3))
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, np.arange(6).reshape(2, 3))
    assert load_npy(path, (3, 2)) is None  # other shape: rebuilt
    path.write_bytes(b"torn")
    assert load_npy(path, (2, 3)) is None

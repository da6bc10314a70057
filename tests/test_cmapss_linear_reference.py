"""scripts/cmapss_linear_reference.py: the ridge fit against a closed-form reference, the alpha chosen on
validation only, and one real-data run (FD001) whose CSV holds the figures of an independent refit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nac.data import cmapss
from nac.data.base import SequenceTensorDataset
from scripts.cmapss_linear_reference import main, reference
from tests.conftest import SHARED_DATA
from tests.test_cmapss import needs_fd001

SCALE = 125.0


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge with an unpenalised intercept, closed form: centre, solve (X'X + aI) w = X'y."""
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, my - mx @ w


def _dataset(x: np.ndarray, y: np.ndarray) -> SequenceTensorDataset:
    n, steps = x.shape[:2]
    return SequenceTensorDataset(x, np.tile(np.arange(steps, dtype=np.float32), (n, 1)), np.ones((n, steps)), y)


def _rmse(pred, y) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)) * SCALE)


def test_the_fit_equals_closed_form_ridge_and_alpha_is_chosen_on_validation_only():
    rng = np.random.default_rng(0)
    w_true = rng.normal(size=6)

    def data(n, noise):
        x = rng.normal(size=(n, 3, 2)).astype(np.float32)
        return x, (x.reshape(n, -1).astype(np.float64) @ w_true + 0.3 + noise * rng.normal(size=n)).astype(np.float32)

    (xt, yt), (xv, yv), (xs, ys) = data(40, 0.5), data(30, 0.5), data(20, 0.5)
    ys_shifted = ys + 1.0  # a test set the choice must not look at
    splits = SimpleNamespace(
        train=_dataset(xt, yt),
        val=_dataset(xv, yv),
        test=_dataset(xs, ys_shifted),
        meta=SimpleNamespace(target_scale=SCALE),
    )
    alphas = (0.01, 1.0, 100.0)
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64)  # noqa: E731
    val = {}
    for alpha in alphas:
        w, b = _ridge(flat(xt), yt.astype(np.float64), alpha)
        val[alpha] = (_rmse(flat(xv) @ w + b, yv), w, b)
    best = min(alphas, key=lambda a: val[a][0])
    got = reference(splits, alphas)
    _, w, b = val[best]
    assert got["alpha"] == best and got["val RMSE"] == pytest.approx(val[best][0], rel=1e-9)
    assert got["test RMSE"] == pytest.approx(_rmse(flat(xs) @ w + b, ys_shifted), rel=1e-9)
    err = (flat(xs) @ w + b - ys_shifted) * SCALE  # NASA score: exp(-e/13) - 1 early, exp(e/10) - 1 late
    nasa = np.where(err < 0, np.expm1(-err / 13.0), np.expm1(err / 10.0)).sum()
    assert got["test NASA score"] == pytest.approx(nasa, rel=1e-6) and got["test engines"] == 20


def test_padded_cycles_enter_the_fit_as_zeros():
    x = np.ones((4, 2, 1), dtype=np.float32) * 5.0
    data = SequenceTensorDataset(x, np.zeros((4, 2)), np.array([[1, 0]] * 4), np.arange(4, dtype=np.float32))
    from scripts.cmapss_linear_reference import flat

    features, labels = flat(data)
    assert features.tolist() == [[5.0, 0.0]] * 4 and labels.tolist() == [0.0, 1.0, 2.0, 3.0]


@needs_fd001
def test_fd001_csv_holds_the_figures_of_an_independent_refit(tmp_path, capsys):
    out = tmp_path / "linear.csv"
    assert main(["--subsets", "FD001", "--alphas", "1", "10", "--data-root", str(SHARED_DATA), "--out", str(out)]) == 0
    (row,) = pd.read_csv(out).to_dict("records")
    assert row["subset"] == "FD001" and row["window"] == 30 and row["test engines"] == 100
    # independent refit on the loader's own arrays (what experiment=cmapss_full reads: window 30, clean)
    splits = cmapss.build({"name": "clean", "val_fraction": 0.2, "split_seed": 0}, SHARED_DATA, window=30)
    flat = lambda d: d.x.numpy().reshape(len(d), -1).astype(np.float64)  # noqa: E731
    w, b = _ridge(flat(splits.train), splits.train.y.numpy().astype(np.float64), float(row["alpha"]))
    val = _rmse(flat(splits.val) @ w + b, splits.val.y.numpy())
    test = _rmse(flat(splits.test) @ w + b, splits.test.y.numpy())
    assert row["val RMSE"] == pytest.approx(val, rel=1e-6) and row["test RMSE"] == pytest.approx(test, rel=1e-6)
    text = out.with_suffix(".md").read_text()
    assert "python scripts/cmapss_linear_reference.py --subsets FD001" in text and "| FD001 " in text


def test_bad_arguments_say_what_is_wrong(capsys):
    with pytest.raises(SystemExit):
        main(["--subsets", "FD009"])
    assert "unknown subset(s) FD009" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--alphas", "0"])
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", "x.md"])
    assert "name a .csv file" in capsys.readouterr().err

"""nac/harness/metrics.py against plain Python loops over samples (several batches of unequal size)."""

from __future__ import annotations

import math

import pytest
import torch

from nac.harness.metrics import MetricAccumulator, asymmetric_score, flatten_steps, loss_fn


def score_by_hand(errors: list[float]) -> float:
    return sum(math.exp(-e / 13.0) - 1 if e < 0 else math.exp(e / 10.0) - 1 for e in errors)


def test_asymmetric_score_equals_loop_and_is_float64():
    errors = torch.tensor([-30.0, -13.0, -0.5, 0.0, 0.25, 10.0, 42.0])
    got = asymmetric_score(errors)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(score_by_hand(errors.tolist()), rel=1e-14)


def batches(task: str):
    gen = torch.Generator().manual_seed(0)
    for n in (5, 3, 8):
        pred = torch.randn(n, 4 if task == "classification" else 1, generator=gen, dtype=torch.float64)
        y = (
            torch.randint(0, 4, (n,), generator=gen)
            if task == "classification"
            else torch.randn(n, generator=gen, dtype=torch.float64)
        )
        yield pred, y


def test_classification_accumulator_equals_per_sample_loop():
    acc, nll, correct, n = MetricAccumulator("classification"), 0.0, 0, 0
    for pred, y in batches("classification"):
        acc.update(pred, y)
        for row, label in zip(pred.tolist(), y.tolist()):
            log_z = math.log(sum(math.exp(v) for v in row))
            nll += log_z - row[label]
            correct += int(max(range(4), key=lambda c: row[c]) == label)
            n += 1
    out = acc.result()
    assert set(out) == {"loss", "accuracy"}
    assert out["loss"] == pytest.approx(nll / n, rel=1e-12)
    assert out["accuracy"] == correct / n and 0 < correct < n


@pytest.mark.parametrize("scale", [1.0, 125.0])
def test_regression_accumulator_equals_per_sample_loop(scale):
    acc, sq, ab, errors, n = MetricAccumulator("regression", target_scale=scale), 0.0, 0.0, [], 0
    for pred, y in batches("regression"):
        acc.update(pred, y)
        for p, t in zip(pred[:, 0].tolist(), y.tolist()):
            sq, ab, n = sq + (p - t) ** 2, ab + abs(p - t), n + 1
            errors.append((p - t) * scale)
    out = acc.result()
    assert out["loss"] == pytest.approx(sq / n, rel=1e-12)  # training units
    assert out["mse"] == pytest.approx(sq * scale**2 / n, rel=1e-12)
    assert out["rmse"] == pytest.approx(math.sqrt(sq / n) * scale, rel=1e-12)
    assert out["mae"] == pytest.approx(ab * scale / n, rel=1e-12)
    assert out["score"] == pytest.approx(score_by_hand(errors), rel=1e-12)


def test_empty_accumulator_raises():
    with pytest.raises(ValueError, match=r"^no samples were evaluated \(empty split\?\)$"):
        MetricAccumulator("regression").result()


def test_default_target_scale_is_one():
    pred, y = torch.tensor([[0.5], [0.25]], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    default, one = MetricAccumulator("regression"), MetricAccumulator("regression", target_scale=1.0)
    default.update(pred, y)
    one.update(pred, y)
    assert default.result() == one.result() and default.result()["mae"] == pytest.approx(0.625)


def test_loss_fn_regression_reshapes_predictions():
    pred, y = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([0.0, 2.0, 1.0])
    assert float(loss_fn("regression", pred, y)) == pytest.approx((1 + 0 + 9) / 3)


def test_flatten_steps_keeps_valid_steps_in_order():
    pred = torch.arange(2 * 3 * 2.0).view(2, 3, 2)
    y = torch.tensor([[0, 1, 2], [3, 4, 5]])
    mask = torch.tensor([[True, False, True], [False, True, True]])
    p, t = flatten_steps(pred, y, mask, per_step=True)
    keep = [(b, s) for b in range(2) for s in range(3) if mask[b, s]]
    assert t.tolist() == [int(y[b, s]) for b, s in keep]
    assert p.tolist() == [pred[b, s].tolist() for b, s in keep]
    p, t = flatten_steps(pred, y, None, per_step=True)
    assert p.shape == (6, 2) and t.tolist() == list(range(6)) and p[4].tolist() == pred[1, 1].tolist()
    p, t = flatten_steps(pred, y, mask, per_step=False)
    assert p is pred and t is y
    # without a mask = with an all-True mask, for targets with trailing dimensions too
    y3 = torch.arange(2 * 3 * 2.0).view(2, 3, 2) + 100
    full = torch.ones(2, 3, dtype=torch.bool)
    for a, b in zip(flatten_steps(pred, y3, None, True), flatten_steps(pred, y3, full, True)):
        assert torch.equal(a, b)

"""LTC and CfC wrappers against ncps' own cells stepped one sample at a time with non-unit times.

The reference never calls the wrapper: an independently built ncps module (same weights, from
``tests.test_baselines_ct.ncps_pair``) provides ncps' ``LTCCell`` / ``CfCCell`` / ``WiredCfCCell``
(and its mixed-memory LSTM cell and ``proj_size`` projection), which is stepped here with batch 1,
each sample with its own elapsed times as a plain Python float. The wrapper runs the whole batch
at once. Elapsed times lie in [0.1, 2.1], so giving a cell dt**2, 1 or the wrong sample's dt
changes the result (checked: the reference itself tells them apart).
"""

from __future__ import annotations

import pytest
import torch
from ncps.torch import CfCCell, LTCCell, WiredCfCCell

from tests.test_baselines_ct import NCPS_CASES, data, ncps_pair


def cells_one_sample_at_a_time(
    twin, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None, min_elapsed: float = 0.0
) -> torch.Tensor:
    """(B, L, out) outputs of ncps' cell stepped per sample; masked steps are skipped (state held,
    output left at 0); elapsed times below ``min_elapsed`` are raised to it."""
    assert isinstance(twin.rnn_cell, (LTCCell, CfCCell, WiredCfCCell))
    project = getattr(twin, "fc", torch.nn.Identity())  # CfC's proj_size map; LTC has none
    b, length, _ = x.shape
    out = None
    for i in range(b):
        h = torch.zeros(1, twin.state_size, dtype=x.dtype)
        c = torch.zeros(1, twin.state_size, dtype=x.dtype)
        for s in range(length):
            if mask is not None and not mask[i, s]:
                continue
            x_s = x[i : i + 1, s]
            if twin.use_mixed:
                h, c = twin.lstm(x_s, (h, c))
            y, h = twin.rnn_cell(x_s, h, max(float(t[i, s]), min_elapsed))
            y = project(y)[0]
            out = x.new_zeros(b, length, y.shape[0]) if out is None else out
            out[i, s] = y
    return out


@pytest.mark.parametrize("case", sorted(NCPS_CASES))
def test_batch_with_per_sample_times_equals_ncps_cells_stepped_alone(case):
    model, twin = ncps_pair(case)
    x, t = data(b=3, length=5, seed=4)
    assert (t - 1).abs().min() > 1e-3 and t.std(0).min() > 1e-2  # non-unit, different per sample
    with torch.no_grad():
        got = model(x, t)
        want = cells_one_sample_at_a_time(twin, x, t)
        squared = cells_one_sample_at_a_time(twin, x, t**2)
        swapped = cells_one_sample_at_a_time(twin, x, t.flip(0))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # the reference is discriminative: dt**2 or another sample's times give other outputs
    assert (want - squared).abs().max() > 1e-4
    assert (want - swapped).abs().max() > 1e-4


@pytest.mark.parametrize("case", ["ltc", "ltc_mixed", "cfc", "cfc_pure_mixed", "cfc_autoncp"])
def test_masked_steps_hold_the_state_and_their_times_are_ignored(case):
    model, twin = ncps_pair(case)
    last = type(model)(**{**_init_kwargs(case), "return_sequences": False}).double()
    last.load_state_dict(model.state_dict())
    x, t = data(b=3, length=6, seed=5)
    mask = torch.tensor(
        [
            [True, False, True, True, False, True],  # gaps inside the sequence
            [True, True, True, True, False, False],  # trailing padding
            [True] * 6,
        ]
    )
    junk_t = torch.where(mask, t, torch.full_like(t, 50.0))
    junk_x = torch.where(mask[..., None], x, torch.full_like(x, 9.0))
    with torch.no_grad():
        seq = model(junk_x, junk_t, mask)
        final = last(junk_x, junk_t, mask)
        want = cells_one_sample_at_a_time(twin, x, t, mask)
    torch.testing.assert_close(seq[mask], want[mask], rtol=1e-10, atol=1e-12)
    last_valid = torch.tensor([5, 3, 5])
    torch.testing.assert_close(final, want[torch.arange(3), last_valid], rtol=1e-10, atol=1e-12)


def _init_kwargs(case: str) -> dict:
    """The wrapper's constructor arguments that ``ncps_pair`` uses for ``case`` (seed 0)."""
    return {"input_dim": 3, "units": 8, "wiring_seed": 5, **NCPS_CASES[case][2]}


@pytest.mark.parametrize("min_elapsed", [1e-6, 1e-2])
def test_ltc_zero_elapsed_time_is_raised_to_min_elapsed(min_elapsed):
    model, twin = ncps_pair("ltc")
    model.min_elapsed = min_elapsed
    x, t = data(b=2, length=4, seed=6)
    t[0, 1] = 0.0  # two observations at the same instant
    t[1, 2] = 0.5 * min_elapsed
    with torch.no_grad():
        got = model(x, t)
        want = cells_one_sample_at_a_time(twin, x, t, min_elapsed=min_elapsed)
        above = cells_one_sample_at_a_time(twin, x, t, min_elapsed=2 * min_elapsed)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    assert not torch.allclose(want, above, rtol=1e-9, atol=1e-10)  # the floor's value matters


@pytest.mark.parametrize("case", ["ltc", "cfc"])
def test_no_time_input_means_unit_elapsed_time(case):
    model, twin = ncps_pair(case)
    x, _ = data(b=2, length=4, seed=7)
    ones = torch.ones(2, 4, dtype=x.dtype)
    with torch.no_grad():
        torch.testing.assert_close(model(x), cells_one_sample_at_a_time(twin, x, ones), rtol=1e-10, atol=1e-12)

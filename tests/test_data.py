"""Event encoding, the digits dataset and the batch collate."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nac.data.base import SequenceTensorDataset, collate_sequences
from nac.data.digits import build
from nac.data.events import encode_events, encode_images


def test_encode_events_run_lengths_rescaled_and_padded():
    events, n = encode_events(np.array([0, 0, 1, 1, 1, 0], dtype=bool), max_events=5, total_duration=3.0)
    assert n == 3
    np.testing.assert_allclose(events, [[0, 1.0], [1, 1.5], [0, 0.5], [0, 0], [0, 0]])


def test_encode_events_truncates():
    events, n = encode_events(np.array([0, 1, 0, 1, 0, 1]), max_events=4, total_duration=6.0)
    assert n == 4 and events.shape == (4, 2)
    np.testing.assert_allclose(events[:, 0], [0, 1, 0, 1])


def test_encode_images_time_is_event_duration_and_mask_counts_runs():
    images = np.array([[[0, 9], [9, 9]], [[9, 9], [9, 9]]], dtype=float)  # 2x2 "images"
    x, t, mask = encode_images(images, threshold=8, max_events=3, total_duration=4.0)
    np.testing.assert_allclose(t, x[:, :, 1])
    assert mask.tolist() == [[True, True, False], [True, False, False]]
    np.testing.assert_allclose(x[0, :2], [[0, 1.0], [1, 3.0]])


def test_digits_clean_protocol_splits():
    splits = build({"name": "clean", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0})
    n = len(splits.train) + len(splits.val) + len(splits.test)
    assert n == 1797 and len(splits.test) == 360
    assert splits.meta.protocol == "clean" and splits.meta.input_dim == 2 and splits.meta.output_dim == 10
    # every image's run lengths sum to max_events over its valid events, and no run was truncated
    x, mask = splits.train.x, splits.train.mask
    durations = (x[:, :, 1] * mask).sum(1)
    torch.testing.assert_close(durations, torch.full_like(durations, 32.0))
    # stratified: each class holds about 20% of the test split
    counts = torch.bincount(splits.test.y, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_digits_splits_are_disjoint():
    """Each image lands in exactly one split (rebuilt from the encoded rows and labels)."""
    digits = load_digits()
    x, _, _ = encode_images(digits.images, 8.0, 32, 32.0)
    keys = {(x[i].tobytes(), int(digits.target[i])) for i in range(len(x))}
    splits = build({"name": "clean"})
    seen = []
    for part in (splits.train, splits.val, splits.test):
        seen += [(part.x[i].numpy().tobytes(), int(part.y[i])) for i in range(len(part))]
    assert len(seen) == 1797 and set(seen) <= keys


def test_digits_paper_protocol_selects_on_reported_fold():
    folds = [build({"name": "paper", "n_folds": 5, "fold": f, "split_seed": 42}) for f in range(5)]
    assert sum(len(s.test) for s in folds) == 1797
    for s in folds:
        assert s.val is s.test or torch.equal(s.val.x, s.test.x)  # the paper selects on the test fold
        assert s.meta.fold is not None


def test_unknown_protocol_lists_choices():
    with pytest.raises(ValueError, match=r"\['clean', 'paper'\]"):
        build({"name": "leaky"})


def test_collate_pads_and_masks():
    a = {"x": torch.ones(2, 3), "t": torch.ones(2), "mask": torch.ones(2, dtype=torch.bool), "y": torch.tensor(1)}
    b = {"x": torch.ones(4, 3), "t": torch.ones(4), "mask": torch.ones(4, dtype=torch.bool), "y": torch.tensor(0)}
    batch = collate_sequences([a, b])
    assert batch["x"].shape == (2, 4, 3)
    assert batch["mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert batch["x"][0, 2:].abs().sum() == 0 and batch["y"].tolist() == [1, 0]


def test_dataset_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must agree"):
        SequenceTensorDataset(np.zeros((2, 3, 1)), np.zeros((2, 4)), np.ones((2, 4), bool), [0, 1])


def test_digits_source_file_is_the_bundled_csv_load_digits_reads():
    meta = build({"name": "clean"}, limit=100).meta
    (path,) = meta.source_files
    assert path.endswith("digits.csv.gz")
    raw = np.loadtxt(path, delimiter=",")  # the file itself holds the images and labels load_digits returns
    digits = load_digits()
    assert np.array_equal(raw[:, :-1], digits.data) and np.array_equal(raw[:, -1], digits.target)

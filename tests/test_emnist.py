"""Event-based MNIST: the IDX reader, the event encoding, the protocols, the cache, the runner.

Real-data tests read the MNIST files from the shared development copy (``../shared/data`` next to
the project, or ``$NAC_DATA_ROOT``) and are skipped when it is absent.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from nac.data import emnist
from nac.data.idx import MNIST_FILES, load_mnist, parse_idx, read_idx
from nac.harness.records import load_records
from nac.harness.runner import run
from nac.models.factory import model_name
from tests.conftest import CONFIGS, SHARED_DATA

DATA_ROOT = SHARED_DATA
MNIST = DATA_ROOT / "mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"MNIST files not found under {MNIST} (get them with "
    "`python scripts/download_data.py mnist --root <dir>` and set "
    "NAC_DATA_ROOT=<dir>)",
)
PAPER = {"name": "paper", "n_folds": 5, "fold": 0, "split_seed": 42}
CLEAN = {"name": "clean", "val_fraction": 0.2, "split_seed": 0}


@pytest.fixture(scope="module")
def mnist():
    if not MNIST.is_dir():
        pytest.skip(f"no MNIST under {MNIST}")
    return load_mnist(MNIST)


# ---------------------------------------------------------------- IDX reader


@needs_mnist
def test_idx_reader_real_files(mnist, tmp_path):
    train_x, train_y, test_x, test_y = mnist
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y.shape == (60000,) and test_y.shape == (10000,)
    assert train_x.dtype == np.uint8 and train_x.max() == 255 and train_x.min() == 0
    assert set(np.unique(train_y)) == set(range(10)) and set(np.unique(test_y)) == set(range(10))
    # an uncompressed copy reads the same as the gzipped original
    raw = tmp_path / MNIST_FILES["test_images"]
    raw.write_bytes(gzip.decompress((MNIST / (MNIST_FILES["test_images"] + ".gz")).read_bytes()))
    np.testing.assert_array_equal(read_idx(raw, ndim=3), test_x)
    labels = tmp_path / MNIST_FILES["test_labels"]
    labels.write_bytes(gzip.decompress((MNIST / (MNIST_FILES["test_labels"] + ".gz")).read_bytes()))
    np.testing.assert_array_equal(read_idx(labels, ndim=1), test_y)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_idx_reader_synthetic_and_corrupt(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(_idx_bytes(images), ndim=3), images)
    path = tmp_path / "x-idx3-ubyte.gz"  # gzip is detected from the content, any name works
    path.write_bytes(gzip.compress(_idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(path), images)

    good = _idx_bytes(images)
    with pytest.raises(ValueError, match="bad IDX magic number"):
        parse_idx(b"\x12\x34" + good[2:], source="corrupt")
    with pytest.raises(ValueError, match="unknown IDX data type"):
        parse_idx(good[:2] + b"\x42" + good[3:])
    with pytest.raises(ValueError, match="expected 1"):
        parse_idx(good, ndim=1)  # images where labels are expected
    with pytest.raises(ValueError, match="truncated or corrupted"):
        parse_idx(good[:-1])
    with pytest.raises(ValueError, match="announces shape"):
        parse_idx(good[:4] + np.asarray([3, 3, 4], dtype=">u4").tobytes() + good[16:])
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(good)[:20])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(broken)


# ---------------------------------------------------------------- encoding


def _runs_by_hand(image: np.ndarray) -> list[tuple[int, int]]:
    """(value, run length) pairs of the binarised row-major image, counted with a plain loop."""
    runs: list[list[int]] = []
    for row in image.tolist():
        for pixel in row:
            value = 1 if pixel >= 128 else 0
            if runs and runs[-1][0] == value:
                runs[-1][1] += 1
            else:
                runs.append([value, 1])
    return [tuple(r) for r in runs]


@needs_mnist
def test_encoding_matches_hand_counted_runs(mnist, tmp_path):
    """Events of real images against run lengths counted by a plain loop (not encode_images)."""
    arrays, _, _ = emnist.load_encoded(DATA_ROOT, tmp_path, limit=3)
    images = np.concatenate([mnist[0][:3], mnist[2][:3]])  # pooled order: official train, then test
    np.testing.assert_array_equal(arrays["y"], np.concatenate([mnist[1][:3], mnist[3][:3]]))
    assert arrays["x"].shape == (6, 256, 2) and arrays["t"].shape == arrays["mask"].shape == (6, 256)
    for i in (0, 1, 2, 4):
        x, t, mask = arrays["x"][i], arrays["t"][i], arrays["mask"][i]
        runs = _runs_by_hand(images[i])
        n = len(runs)
        assert sum(length for _, length in runs) == 784 and 0 < n < 256
        assert mask[:n].all() and not mask[n:].any()
        np.testing.assert_array_equal(x[:n, 0], [v for v, _ in runs])
        np.testing.assert_allclose(x[:n, 1], [length * 256 / 784 for _, length in runs], rtol=1e-6)
        assert x[:n, 1].sum() == pytest.approx(256.0, rel=1e-5)
        assert (x[n:] == 0).all() and (t[n:] == 0).all()
        np.testing.assert_array_equal(t, x[:, 1])  # time input: each event's duration


# ---------------------------------------------------------------- protocols


@needs_mnist
def test_clean_protocol_sizes_disjoint_stratified(mnist, tmp_path):
    limit = 500
    s = emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path, limit=limit)
    assert (len(s.train), len(s.val), len(s.test)) == (400, 100, 500)
    assert s.meta.name == "emnist" and s.meta.protocol == "clean" and s.meta.fold is None
    assert (s.meta.input_dim, s.meta.output_dim, s.meta.metric, s.meta.metric_mode) == (2, 10, "accuracy", "max")
    assert s.meta.task == "classification"
    assert s.train.x.shape[1:] == (256, 2)
    # test = the official test images, in order; train + val = the official train images
    np.testing.assert_array_equal(s.test.y.numpy(), mnist[3][:limit])
    arrays, _, _ = emnist.load_encoded(DATA_ROOT, tmp_path, limit=limit)
    train_x = arrays["x"][:limit]
    rows = {x.tobytes(): k for k, x in enumerate(train_x)}
    train_rows = [rows[x.numpy().tobytes()] for x in s.train.x]
    val_rows = [rows[x.numpy().tobytes()] for x in s.val.x]
    assert not set(train_rows) & set(val_rows)
    assert len(set(train_rows) | set(val_rows)) == limit
    # stratified: every class's validation share is close to 20 %
    counts = np.bincount(mnist[1][:limit], minlength=10)
    val_counts = np.bincount(s.val.y.numpy(), minlength=10)
    assert np.all(np.abs(val_counts - 0.2 * counts) <= 1)
    # the split does not depend on the run seed
    other = emnist.build(CLEAN, DATA_ROOT, seed=3, cache_dir=tmp_path, limit=limit)
    assert np.array_equal(other.val.y.numpy(), s.val.y.numpy())


@needs_mnist
def test_paper_protocol_folds_partition_the_pooled_set(tmp_path):
    limit = 250
    arrays, _, _ = emnist.load_encoded(DATA_ROOT, tmp_path, limit=limit)
    total = len(arrays["y"])
    assert total == 2 * limit
    held_out_labels = []
    seen = []
    for fold in range(5):
        s = emnist.build({**PAPER, "fold": fold}, DATA_ROOT, cache_dir=tmp_path, limit=limit)
        assert s.meta.protocol == "paper" and s.meta.fold == fold
        assert len(s.train) + len(s.test) == total and len(s.test) == total // 5
        assert s.val is not None and len(s.val) == len(s.test)
        assert np.array_equal(s.val.x.numpy(), s.test.x.numpy())  # selection on the reported fold
        held_out_labels.append(s.test.y.numpy())
        seen.append(s)
    # the held-out folds together are the pooled set: compare label histograms and sample multisets
    pooled = np.concatenate(held_out_labels)
    assert np.array_equal(np.bincount(pooled, minlength=10), np.bincount(arrays["y"], minlength=10))
    key = lambda x, y: x.tobytes() + bytes([y])  # noqa: E731
    expected = sorted(key(x, y) for x, y in zip(arrays["x"], arrays["y"]))
    got = sorted(key(x.numpy(), int(y)) for s in seen for x, y in zip(s.test.x, s.test.y))
    assert got == expected
    # fold 0's training set is the other four folds
    train0 = sorted(key(x.numpy(), int(y)) for x, y in zip(seen[0].train.x, seen[0].train.y))
    others = sorted(key(x.numpy(), int(y)) for s in seen[1:] for x, y in zip(s.test.x, s.test.y))
    assert train0 == others
    with pytest.raises(ValueError, match="protocol.fold=5"):
        emnist.build({**PAPER, "fold": 5}, DATA_ROOT, cache_dir=tmp_path, limit=limit)
    with pytest.raises(ValueError, match="no protocol 'grouped'"):
        emnist.build({"name": "grouped"}, DATA_ROOT, cache_dir=tmp_path, limit=limit)


# ---------------------------------------------------------------- cache and errors


@needs_mnist
def test_second_build_reads_the_cache(tmp_path, monkeypatch):
    first = emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path / "cache", limit=100)
    assert first.meta.extra["from_cache"] is False
    cache_file = Path(first.meta.extra["cache_file"])
    assert cache_file.is_file() and cache_file.is_relative_to(tmp_path / "cache")

    def boom(*args, **kwargs):
        raise AssertionError("encoder called although the cache exists")

    monkeypatch.setattr(emnist, "encode_images", boom)
    monkeypatch.setattr(emnist, "load_mnist", boom)
    second = emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path / "cache", limit=100)
    assert second.meta.extra["from_cache"] is True
    for a, b in ((first.train, second.train), (first.val, second.val), (first.test, second.test)):
        for key in ("x", "t", "mask", "y"):
            assert np.array_equal(getattr(a, key).numpy(), getattr(b, key).numpy())
    # other encoding settings get their own cache entry (so they do encode)
    with pytest.raises(AssertionError, match="encoder called"):
        emnist.build(CLEAN, DATA_ROOT, cache_dir=tmp_path / "cache", limit=100, threshold=64)


def test_missing_data_root_names_file_and_download_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        emnist.build(CLEAN, tmp_path / "nowhere", cache_dir=tmp_path / "cache", limit=10)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "nowhere" / "mnist") in message
    assert f"python scripts/download_data.py mnist --root {tmp_path / 'nowhere'}" in message
    assert not (tmp_path / "nowhere").exists()  # nothing written into the data root


# ---------------------------------------------------------------- configs and the runner


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("experiment,sweep", [("emnist_paper", "0,1,2,3,4"), ("emnist_clean", "0,1,2")])
def test_experiment_configs_compose(experiment, sweep):
    cfg = _compose(f"experiment={experiment}")
    assert cfg.dataset.name == "emnist" and cfg.protocol.name == experiment.split("_")[1]
    assert model_name(cfg) == "nac" and "name" not in cfg.model  # the name is the model= choice
    assert (cfg.model.topk, cfg.model.mode, cfg.model.euler_steps, cfg.model.delta_t, cfg.model.sparsity) == (
        10,
        "euler",
        6,
        1.5,
        0.7,
    )
    assert (cfg.model.d_model, cfg.model.num_heads) == (64, 16)
    assert cfg.trainer.epochs == 75 and cfg.trainer.batch_size == 32
    assert cfg.trainer.optimizer.lr == 1e-3 and cfg.trainer.optimizer.weight_decay == 0.004
    assert (cfg.trainer.scheduler.factor, cfg.trainer.scheduler.patience) == (0.3, 3)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert list(cfg.hydra.sweeper.params.values()) == [sweep]
    assert cfg.dataset.stem.channels == [64, 64] and cfg.dataset.stem.stride == 5
    other = _compose(f"experiment={experiment}", "model=cfc")
    assert model_name(other) == "cfc" and other.model.units == 64


def test_emnist_stem_gives_the_papers_11_steps():
    import torch
    from hydra.utils import instantiate

    cfg = _compose("experiment=none", "dataset=emnist")
    stem = instantiate(cfg.dataset.stem)(in_features=2)
    x, t, mask = torch.randn(2, 256, 2), torch.ones(2, 256), torch.ones(2, 256, dtype=torch.bool)
    h, t2, m2 = stem(x, t, mask)
    assert h.shape == (2, 11, 64) and t2.shape == (2, 11) and m2.shape == (2, 11)


@needs_mnist
def test_end_to_end_tiny_run(make_cfg, tmp_path):
    best = run(
        make_cfg(
            "dataset=emnist",
            "dataset.builder.limit=300",
            f"paths.data_root={DATA_ROOT}",
            "protocol=paper",
            "protocol.fold=2",
            "trainer.batch_size=32",
            "trainer.epochs=1",
            "trainer.limit_train_batches=2",
            "dataset.nac.euler_steps=2",
        )
    )
    (rec,) = load_records(tmp_path / "records")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["dataset"] == "emnist" and rec["protocol"] == "paper" and rec["model"] == "nac"
    assert 0.0 <= rec["test"]["accuracy"] <= 1.0 and rec["val"]["accuracy"] == pytest.approx(best)
    assert (tmp_path / "cache" / "emnist").is_dir()  # cache under paths.cache_dir, not the data root


def write_synthetic_mnist(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """The four IDX files (gzipped) of a tiny MNIST under ``folder``: random 28x28 images, labels 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / (MNIST_FILES[f"{split}_images"] + ".gz")).write_bytes(gzip.compress(_idx_bytes(images)))
        (folder / (MNIST_FILES[f"{split}_labels"] + ".gz")).write_bytes(gzip.compress(_idx_bytes(labels)))
    return folder


def test_source_files_and_a_replaced_file_is_not_served_from_cache(tmp_path):
    folder = write_synthetic_mnist(tmp_path / "data" / "mnist")
    protocol = {"name": "paper", "n_folds": 2, "fold": 0, "split_seed": 42}
    first = emnist.build(protocol, tmp_path / "data", cache_dir=tmp_path / "cache")
    assert sorted(first.meta.source_files) == sorted(
        str((folder / (stem + ".gz")).resolve()) for stem in MNIST_FILES.values()
    )
    assert emnist.build(protocol, tmp_path / "data", cache_dir=tmp_path / "cache").meta.extra["from_cache"] is True
    # new test images under the same name (same size): the cache built from the old ones must not be served
    target = folder / (MNIST_FILES["test_images"] + ".gz")
    stat = target.stat()
    write_synthetic_mnist(tmp_path / "other", seed=1)
    target.write_bytes((tmp_path / "other" / target.name).read_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = emnist.build(protocol, tmp_path / "data", cache_dir=tmp_path / "cache")
    uncached = emnist.build(protocol, tmp_path / "data", cache_dir=None)
    assert second.meta.extra["from_cache"] is False
    assert torch.equal(second.test.x, uncached.test.x) and not torch.equal(second.test.x, first.test.x)

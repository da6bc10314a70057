"""Batched reading of pre-padded datasets (nac.harness.runner.make_loader): the same batches, in the
same order, as the per-item DataLoader with collate_sequences, and therefore the same training numbers."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from nac.data.base import SequenceTensorDataset, collate_sequences
from nac.harness import runner as runner_module
from nac.harness.records import load_records
from nac.harness.runner import TensorBatches, make_loader, run
from tests.conftest import SHARED_DATA


def _dataset(n: int = 103, length: int = 5, per_step: bool = False, classes: bool = True) -> SequenceTensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, length, 3, generator=g)
    t = torch.rand(n, length, generator=g)
    mask = torch.rand(n, length, generator=g) > 0.3
    if per_step:
        y = torch.rand(n, length, generator=g)
    else:
        y = torch.randint(0, 4, (n,), generator=g) if classes else torch.rand(n, generator=g)
    return SequenceTensorDataset(x.numpy(), t.numpy(), mask.numpy(), y.numpy())


def _per_item_loader(dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """What the runner built before batched reading: one __getitem__ per item, then collate_sequences."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_sequences,
        generator=torch.Generator().manual_seed(seed),
        drop_last=False,
    )


def _assert_same_batches(loader, reference, epochs: int = 3) -> None:
    for _ in range(epochs):  # a new epoch draws a new order from the same generator
        got, want = list(loader), list(reference)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.keys() == b.keys()
            for key in b:
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
                assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("kind", ["classes", "regression", "per_step"])
def test_batched_loader_gives_the_per_item_batches_in_the_same_order(shuffle, kind):
    dataset = _dataset(per_step=kind == "per_step", classes=kind == "classes")
    loader = make_loader(dataset, 16, shuffle, num_workers=0, seed=7)
    assert isinstance(loader.dataset, TensorBatches)  # the fast path is the one tested
    _assert_same_batches(loader, _per_item_loader(dataset, 16, shuffle, seed=7))


def test_batched_loader_with_worker_processes_gives_the_same_batches():
    dataset = _dataset()
    loader = make_loader(dataset, 16, True, num_workers=2, seed=3)
    _assert_same_batches(loader, _per_item_loader(dataset, 16, True, seed=3), epochs=2)


def test_batched_loader_order_depends_on_the_seed():
    dataset = _dataset()
    first = next(iter(make_loader(dataset, 16, True, num_workers=0, seed=0)))["x"]
    other = next(iter(make_loader(dataset, 16, True, num_workers=0, seed=1)))["x"]
    assert not torch.equal(first, other)


def test_a_dataset_with_its_own_items_is_read_item_by_item():
    class Doubled(SequenceTensorDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            return {**item, "x": 2 * item["x"]}

    base = _dataset(n=20)
    dataset = Doubled(base.x.numpy(), base.t.numpy(), base.mask.numpy(), base.y.numpy())
    loader = make_loader(dataset, 8, False, num_workers=0, seed=0)
    assert not isinstance(loader.dataset, TensorBatches)
    assert torch.equal(next(iter(loader))["x"], 2 * base.x[:8])


def _history_and_test(make_cfg, tmp_path, monkeypatch, batched: bool, *overrides):
    """Train a tiny run with the batched (or the per-item) loaders: its history (losses, validation
    metrics; not the epoch times) and test metrics."""
    if not batched:
        monkeypatch.setattr(runner_module, "_reads_whole_batches", lambda dataset: False)
    run(make_cfg(*overrides, "force=true"))
    (record,) = load_records(tmp_path / "records")
    Path(record["_path"]).unlink()
    monkeypatch.undo()
    history = [{k: v for k, v in entry.items() if k != "epoch_time_s"} for entry in record["history"]]
    return history, record["val"], record["test"], record.get("tests")


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=nac_official", "trainer.limit_train_batches=null"),
        ("model=lstm", "trainer.limit_train_batches=5"),
    ],
)
def test_a_run_gives_the_same_numbers_with_batched_and_per_item_loading(make_cfg, tmp_path, monkeypatch, overrides):
    before = _history_and_test(make_cfg, tmp_path, monkeypatch, False, *overrides)
    after = _history_and_test(make_cfg, tmp_path, monkeypatch, True, *overrides)
    assert after == before


def test_a_bearings_paper_run_gives_the_same_numbers_with_batched_loading(make_cfg, tmp_path, monkeypatch):
    if not (SHARED_DATA / "bearings" / "features" / "pronostia").is_dir():
        pytest.skip(f"no bearing features under {SHARED_DATA}")
    overrides = (
        "dataset=bearings",
        "protocol=paper",
        "trainer=bearings",
        "model=nac",
        "model.activation=relu",
        "dataset.builder.train_bearings=[Bearing1_4,Bearing1_7]",
        "dataset.builder.limit=300",
        "dataset.builder.test_bearings.pronostia=Bearing1_2",
        "trainer.limit_train_batches=null",
        f"paths.data_root={SHARED_DATA}",
    )
    before = _history_and_test(make_cfg, tmp_path, monkeypatch, False, *overrides)
    after = _history_and_test(make_cfg, tmp_path, monkeypatch, True, *overrides)
    assert after == before

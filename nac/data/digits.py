"""scikit-learn's bundled handwritten digits (8x8, 1,797 images) as an event sequence.

The embedded default dataset: it ships with scikit-learn, so it needs no download. Each image
is encoded the way event-based MNIST is (docs/PROTOCOLS.md, 1): binarised (pixel >= 8 of 16),
flattened row-major and run-length encoded into (value, duration) events, durations rescaled
to sum to ``max_events``; at most 29 runs occur, so ``max_events=32`` truncates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from sklearn.datasets import load_digits

from nac.data.base import DatasetMeta, DatasetSplits, SequenceTensorDataset
from nac.data.events import encode_images
from nac.data.protocols import Protocol
from nac.data.splits import paper_splits, stratified_holdout


def source_file() -> Path:
    """The file ``load_digits`` reads: scikit-learn's bundled ``datasets/data/digits.csv.gz``."""
    return Path(str(resources.files("sklearn.datasets.data") / "digits.csv.gz")).resolve()


def build(
    protocol: Mapping,
    data_root: Path | None = None,
    seed: int = 0,
    max_events: int = 32,
    threshold: float = 8.0,
    limit: int | None = None,
    cache_dir: Path | None = None,
) -> DatasetSplits:
    """Digits splits. ``clean``: stratified train/val/test hold-out (``protocol.split_seed``).
    ``paper``: stratified k-fold, model selection on the held-out fold (as the NAC authors do).
    ``limit`` keeps the first N images (for fast tests). Small enough to need no cache."""
    protocol = Protocol.parse("digits", protocol)
    digits = load_digits()
    images, labels = digits.images, digits.target
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x, t, mask = encode_images(images, threshold, max_events, total_duration=float(max_events))
    full = SequenceTensorDataset(x, t, mask, labels)
    if protocol.is_paper:
        splits = paper_splits(full, protocol, labels)
    else:
        indices = stratified_holdout(labels, protocol.val_fraction, protocol.test_fraction, protocol.split_seed)
        splits = tuple(full.subset(idx) for idx in indices)
    meta = DatasetMeta(
        name="digits",
        input_dim=2,
        output_dim=10,
        task="classification",
        metric="accuracy",
        metric_mode="max",
        protocol=protocol.name,
        time_unit="pixel run (rescaled)",
        fold=protocol.record_fold,
        source_files=[str(source_file())],
    )
    return DatasetSplits(*splits, meta=meta)

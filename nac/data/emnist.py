"""Event-based MNIST (docs/PROTOCOLS.md, 1): each 28x28 image as a sequence of run-length events.

Encoding (shared with ``digits``, :func:`nac.data.events.encode_images`): binarise (pixel >= 128),
flatten row-major to 784 pixels, run-length encode into (value, run length) events, rescale the run
lengths so they sum to 256, truncate / zero-pad to 256 events, with a mask of the real events.
Features per event: [value, duration]; the time input ``t`` is each event's duration (the elapsed time
since the previous event ended). MNIST has at most 105 runs per image (mean 53), so nothing is truncated.

Data: ``<data_root>/mnist/`` holding the four canonical IDX files (gzipped or not); get them with
``python scripts/download_data.py mnist --root <data_root>``. Encoded arrays are cached as ``.npz``
under ``cache_dir`` (never under ``data_root``), keyed by the source files' paths, sizes and
modification times (:func:`nac.data.sources.stat_key`) and the encoding settings. A damaged IDX file
(bad header, truncated, corrupt gzip, labels outside 0..9) is one DataError line naming it.

Input modes (``input_mode``): ``masked`` (default) marks the padding events invalid and gives each event
its duration as the time input, so every model reads out its state at the last real event. ``authors``
feeds the data as the authors' script (``mnist_exp/mnist_kfold.py``) did: the 256 padded events are all
data (mask all True, so the final step is read out) and the time input is 1 everywhere (the durations
are only the second feature channel). Use it with ``dataset=emnist_authors`` (docs/PROTOCOLS.md, 1).

Protocols: ``paper``: the 60k + 10k images pooled, shuffled stratified k-fold (``protocol.n_folds``,
``split_seed`` 42); the checkpoint is chosen on the held-out fold that is reported (val = test), as the
NAC authors did. ``clean``: the official 60k / 10k split, validation stratified from the 60k
(``protocol.val_fraction``, ``split_seed``); the 10k test images are never used for selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from nac.data.base import DatasetMeta, DatasetSplits, SequenceTensorDataset
from nac.data.cache import cache_path, cached
from nac.data.events import encode_images
from nac.data.idx import load_mnist, mnist_paths
from nac.data.protocols import Protocol
from nac.data.sources import stat_key
from nac.data.splits import paper_splits

#: bump when the encoding changes, so old caches are not reused
ENCODING_VERSION = 1


def _encode(folder: Path, data_root: Path, max_events: int, threshold: float, limit: int | None) -> dict:
    train_images, train_labels, test_images, test_labels = load_mnist(folder, data_root)
    if limit is not None:
        train_images, train_labels = train_images[:limit], train_labels[:limit]
        test_images, test_labels = test_images[:limit], test_labels[:limit]
    images = np.concatenate([train_images, test_images])
    x, t, mask = encode_images(images, threshold, max_events, total_duration=float(max_events))
    return {
        "x": x,
        "t": t,
        "mask": mask,
        "y": np.concatenate([train_labels, test_labels]).astype(np.int64),
        "n_train": np.int64(len(train_images)),
    }


def load_encoded(
    data_root: Path,
    cache_dir: Path | None = None,
    max_events: int = 256,
    threshold: float = 128,
    limit: int | None = None,
) -> tuple[dict, Path | None, bool]:
    """Encoded MNIST, official train images first then test: ``(arrays, cache_file, from_cache)``.

    ``arrays`` holds x (N, L, 2), t (N, L), mask (N, L), y (N,) and n_train.
    """
    data_root = Path(data_root)
    folder = data_root / "mnist"
    paths = mnist_paths(folder, data_root)  # FileNotFoundError with the download command
    cache_file = cache_path(
        cache_dir,
        "emnist",
        "events",
        v=ENCODING_VERSION,
        sources=stat_key(paths.values()),
        max_events=int(max_events),
        threshold=float(threshold),
        limit=limit,
    )
    # compressed (about 5 MB instead of 230 MB: most of the 256 events are padding); t is derived
    arrays, from_cache = cached(
        cache_file,
        ("x", "mask", "y", "n_train"),
        lambda: _encode(folder, data_root, max_events, threshold, limit),
        compressed=True,
    )
    arrays["t"] = arrays["x"][:, :, 1].copy()  # as encode_images: t = event durations
    return arrays, cache_file, from_cache


#: how the events are fed to the model (module docstring)
INPUT_MODES = ("masked", "authors")


def build(
    protocol: Mapping,
    data_root: Path,
    seed: int = 0,
    cache_dir: Path | None = None,
    max_events: int = 256,
    threshold: float = 128,
    limit: int | None = None,
    input_mode: str = "masked",
) -> DatasetSplits:
    """E-MNIST splits for ``protocol`` (``paper`` or ``clean``, see the module docstring).

    ``limit`` keeps the first N images of each official split (quick tests). ``seed`` varies the
    model, not the split (splits use ``protocol.split_seed``). ``input_mode``: ``masked`` or
    ``authors`` (module docstring).
    """
    protocol = Protocol.parse("emnist", protocol)
    if input_mode not in INPUT_MODES:
        raise ValueError(f"dataset.builder.input_mode={input_mode!r} is not valid; use one of {', '.join(INPUT_MODES)}")
    if data_root is None:
        raise FileNotFoundError(
            "E-MNIST needs a data root holding mnist/ (paths.data_root or $NAC_DATA_ROOT); "
            "get the files with `python scripts/download_data.py mnist --root <data_root>`"
        )
    arrays, cache_file, from_cache = load_encoded(data_root, cache_dir, max_events, threshold, limit)
    sources = mnist_paths(Path(data_root) / "mnist", data_root).values()
    labels = arrays["y"]
    n_train = int(arrays["n_train"])
    events = arrays["mask"].sum(1)
    if input_mode == "authors":  # padding is data, t = 1: what the authors' Keras model saw
        full = SequenceTensorDataset(arrays["x"], np.ones_like(arrays["t"]), np.ones_like(arrays["mask"]), labels)
    else:
        full = SequenceTensorDataset(arrays["x"], arrays["t"], arrays["mask"], labels)
    if protocol.is_paper:  # the 70k images pooled
        splits = paper_splits(full, protocol, labels)
    else:  # the official 60k / 10k split, validation stratified from the 60k
        train_idx, val_idx = train_test_split(
            np.arange(n_train),
            test_size=protocol.val_fraction,
            stratify=labels[:n_train],
            random_state=protocol.split_seed,
        )
        splits = (
            full.subset(np.sort(train_idx)),
            full.subset(np.sort(val_idx)),
            full.subset(np.arange(n_train, len(labels))),
        )
    meta = DatasetMeta(
        name="emnist",
        input_dim=2,
        output_dim=10,
        task="classification",
        metric="accuracy",
        metric_mode="max",
        protocol=protocol.name,
        time_unit=(f"pixel run (rescaled to {max_events} per image)" if input_mode == "masked" else "event (t = 1)"),
        fold=protocol.record_fold,
        source_files=[str(Path(p).resolve()) for p in sources],
        extra={
            "input_mode": input_mode,
            "max_events": int(max_events),
            "threshold": float(threshold),
            "n_images": int(len(labels)),
            "limit": limit,
            "events_per_image_max": int(events.max()),
            "events_per_image_mean": round(float(events.mean()), 2),
            "cache_file": str(cache_file) if cache_file else None,
            "from_cache": from_cache,
        },
    )
    return DatasetSplits(*splits, meta=meta)

"""Reader for the IDX format MNIST is distributed in (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels).

IDX header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 size per dimension; the data follows. Files may be gzipped (detected from the
gzip magic bytes, not the file name).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nac.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: canonical MNIST file names (without ``.gz``), by role
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DOWNLOAD_HINT = "python scripts/download_data.py mnist --root {root}"
#: what to do about a damaged file (the data root is not known where the bytes are parsed)
_REFETCH = "download a fresh copy (python scripts/download_data.py mnist --root <data_root>)"


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it starts with the gzip magic bytes."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(path, None, f"corrupt gzip stream ({err})", _REFETCH) from None
    return raw


def parse_idx(data: bytes, source: str = "<bytes>", ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes into an array; ``ndim`` (if given) is the expected number of dimensions."""
    if len(data) < 4:
        raise DataError(source, "header", f"too short for an IDX header ({len(data)} bytes)", _REFETCH)
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            source,
            "header",
            f"bad IDX magic number {data[:4].hex()} (must start with 0000): not an IDX file, or a corrupted one",
            _REFETCH,
        )
    type_code, dims = data[2], data[3]
    if type_code not in _DTYPES:
        raise DataError(
            source, "header", f"unknown IDX data type 0x{type_code:02x} in magic number {data[:4].hex()}", _REFETCH
        )
    if ndim is not None and dims != ndim:
        raise DataError(
            source,
            "header",
            f"IDX file has {dims} dimensions, expected {ndim} (magic number "
            f"{data[:4].hex()}; images are idx3, labels idx1)",
            "check which file this is, or " + _REFETCH,
        )
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataError(source, "header", "truncated IDX header", _REFETCH)
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            source,
            None,
            f"IDX header announces shape {shape} ({expected} data bytes) but the file "
            f"holds {len(data) - header} data bytes (truncated or corrupted)",
            _REFETCH,
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not)."""
    return parse_idx(read_bytes(path), source=str(path), ndim=ndim)


def find_mnist_file(folder: str | Path, stem: str, data_root: str | Path | None = None) -> Path:
    """``folder/stem`` or ``folder/stem.gz``; a FileNotFoundError says how to get it when neither exists."""
    folder = Path(folder)
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    root = Path(data_root) if data_root is not None else folder.parent
    raise FileNotFoundError(
        f"MNIST file {stem}.gz (or {stem}) not found in {folder}; download it with "
        f"`{DOWNLOAD_HINT.format(root=root)}` or point paths.data_root / $NAC_DATA_ROOT "
        "at a folder holding mnist/"
    )


def mnist_paths(folder: str | Path, data_root: str | Path | None = None) -> dict[str, Path]:
    """The four MNIST files in ``folder``, by role (see :data:`MNIST_FILES`)."""
    return {role: find_mnist_file(folder, stem, data_root) for role, stem in MNIST_FILES.items()}


def load_mnist(folder: str | Path, data_root: str | Path | None = None):
    """``(train_images (60000, 28, 28) uint8, train_labels (60000,), test_images, test_labels)``."""
    paths = mnist_paths(folder, data_root)
    arrays = {}
    for role, path in paths.items():
        arrays[role] = read_idx(path, ndim=3 if role.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_file, label_file = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise DataError(
                image_file,
                "header",
                f"images of {images.shape[1:]} pixels, expected (28, 28)",
                "check which file this is, or " + _REFETCH,
            )
        if len(images) != len(labels):
            raise DataError(
                label_file,
                None,
                f"{len(labels)} labels but {image_file} holds {len(images)} images",
                "the two files must come from the same download: " + _REFETCH,
            )
        if labels.dtype.kind not in "iu":
            raise DataError(label_file, "header", f"labels of type {labels.dtype}, expected integers", _REFETCH)
        bad = np.flatnonzero((labels < 0) | (labels > 9))
        if len(bad):
            raise DataError(label_file, f"label {bad[0]}", f"{labels[bad[0]]} is outside 0..9", _REFETCH)
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]

"""Image operations that copy OpenCV's behaviour on 8-bit RGB images, in NumPy (no OpenCV dependency).

Bilinear sampling at half-pixel centres (``cv2.resize`` with ``INTER_LINEAR``), a bilinear shift with a
black border (``cv2.warpAffine`` with the default ``BORDER_CONSTANT``), RGB -> YUV in OpenCV's 14-bit
fixed point (``cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)``), and reading a file as RGB (PIL).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def linear_sampling(out_coords: np.ndarray, scale: float, offset: float, low: float, high: float):
    """Bilinear source indices and weights for output coordinates (OpenCV INTER_LINEAR geometry)."""
    src = (out_coords + 0.5) * scale - 0.5 + offset
    src = np.clip(src, low, high)
    lower = np.floor(src).astype(np.int64)
    upper = np.minimum(lower + 1, int(high))
    return lower, upper, (src - lower).astype(np.float32)


# OpenCV's fixed-point constants (imgproc color.hpp / color_yuv.simd.hpp, yuv_shift = 14)
_YUV_SHIFT = 14
_R2Y, _G2Y, _B2Y = 4899, 9617, 1868  # 0.299, 0.587, 0.114 * 2^14
_B2U, _R2V = 8061, 14369  # 0.492, 0.877 * 2^14


def _descale(value: np.ndarray) -> np.ndarray:
    return (value + (1 << (_YUV_SHIFT - 1))) >> _YUV_SHIFT


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> uint8 YUV (..., 3), as ``cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)`` on 8-bit images.

    BT.601: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``U = 0.492 (B - Y) + 128``, ``V = 0.877 (R - Y) + 128``,
    in OpenCV's 14-bit fixed point with Y rounded before U and V, saturated to [0, 255]."""
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb_to_yuv expects uint8 RGB, got {rgb.dtype}")
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    y = _descale(r * _R2Y + g * _G2Y + b * _B2Y)
    half = 128 << _YUV_SHIFT
    u = _descale((b - y) * _B2U + half)
    v = _descale((r - y) * _R2V + half)
    return np.clip(np.stack([y, u, v], axis=-1), 0, 255).astype(np.uint8)


def load_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB (PIL's errors for unreadable files pass through)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def translate(band: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``out(r, c) = band(r - dy, c - dx)``, bilinear, zero outside (as cv2.warpAffine's black border)."""
    h, w, _ = band.shape
    padded = np.zeros((h + 2, w + 2, 3), np.float32)
    padded[1:-1, 1:-1] = band
    ys = np.arange(h, dtype=np.float32) - dy + 1
    xs = np.arange(w, dtype=np.float32) - dx + 1
    ys, xs = np.clip(ys, 0, h + 1), np.clip(xs, 0, w + 1)
    y0, x0 = np.minimum(np.floor(ys).astype(np.int64), h), np.minimum(np.floor(xs).astype(np.int64), w)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    rows = padded[y0] * (1 - wy) + padded[y0 + 1] * wy
    return rows[:, x0] * (1 - wx) + rows[:, x0 + 1] * wx

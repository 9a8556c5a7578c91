"""Colour control: pure NumPy functions on RGB float images in 0..255."""

from __future__ import annotations

import numpy as np

# JPEG / ITU-R BT.601 full-range YCbCr, the conversion Pillow uses.
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb):
    return np.asarray(rgb, np.float64) @ _RGB_TO_YCBCR.T + _OFFSET


def ycbcr_to_rgb(ycbcr):
    return (np.asarray(ycbcr, np.float64) - _OFFSET) @ _YCBCR_TO_RGB.T


def luminance_transfer(content, stylized):
    """The stylized image's luminance (Y) with the content's chroma (Cb, Cr)."""
    y = rgb_to_ycbcr(stylized)[..., :1]
    chroma = rgb_to_ycbcr(content)[..., 1:]
    return np.clip(ycbcr_to_rgb(np.concatenate([y, chroma], axis=-1)), 0, 255).astype(np.float32)

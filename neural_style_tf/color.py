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


# ---------------------------------------------------------------- colour control
# Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic Style
# Transfer" (arXiv 1606.05897): luminance-only transfer and colour histogram matching.

PRESERVE_MODES = ("luminance", "luminance-only", "histogram")
COLOR_MATCHES = ("sqrt", "cholesky")
# Added to the covariances' diagonals so a grey (rank-deficient) image can be inverted.
_COV_EPS = 1e-3


def color_statistics(rgb):
    """Mean (3,) and covariance (3, 3) of the pixels of an (H, W, 3) image, in float64."""
    pixels = np.asarray(rgb, np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


def _sqrtm(cov, inverse=False):
    """Symmetric square root (or inverse square root) by eigendecomposition."""
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 0.0) + _COV_EPS
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def match_color_statistics(source, reference, method="sqrt"):
    """x' = A (x - mu_s) + mu_r so `source`'s colour mean and covariance become `reference`'s.

    method "sqrt": A = S_r^1/2 S_s^-1/2 (symmetric square roots, eigendecomposition);
    "cholesky": A = L_r L_s^-1. Both give exactly the reference covariance; they differ
    in the rotation of the colour space (sqrt is the one closest to the identity).
    Not clipped: the caller decides (clipping changes the statistics slightly).
    """
    mu_s, cov_s = color_statistics(source)
    mu_r, cov_r = color_statistics(reference)
    if method == "sqrt":
        a = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    elif method == "cholesky":
        eye = np.eye(3) * _COV_EPS
        a = np.linalg.cholesky(cov_r + eye) @ np.linalg.inv(np.linalg.cholesky(cov_s + eye))
    else:
        raise ValueError(f"method must be one of {COLOR_MATCHES}, not {method!r}")
    pixels = np.asarray(source, np.float64).reshape(-1, 3)
    return ((pixels - mu_s) @ a.T + mu_r).reshape(np.shape(source))


def luminance(rgb):
    """Y of YCbCr, (H, W)."""
    return rgb_to_ycbcr(rgb)[..., 0]


def gray3(y):
    """A luminance plane replicated into 3 channels (the network wants RGB)."""
    return np.repeat(np.clip(np.asarray(y, np.float32), 0, 255)[..., None], 3, axis=2)


def match_luminance(style_y, content_y):
    """The style's luminance with the content's mean and standard deviation."""
    s_mu, s_sd = float(np.mean(style_y)), float(np.std(style_y))
    c_mu, c_sd = float(np.mean(content_y)), float(np.std(content_y))
    return (np.asarray(style_y, np.float64) - s_mu) * (c_sd / max(s_sd, 1e-6)) + c_mu


def prepare_colors(content, styles, mode=None, method="sqrt", color_source=None):
    """Transform the inputs for a colour mode; returns (content, styles, finish).

    `finish(rgb)` turns the optimised image into the output (its size must be the
    content's). `color_source` (an RGB image) replaces the content as the reference
    for `histogram`. Modes:
      None: nothing changes;
      luminance: the classic post-hoc swap, the output's Y with the content's CbCr;
      luminance-only: optimise on Y replicated to 3 channels, with the style's Y
        matched to the content's mean/std, then recombine with the content's CbCr;
      histogram: the styles' colours get the reference's mean and covariance first.
    """
    content = np.asarray(content, np.float32)
    original = content
    if mode is None:
        return content, list(styles), lambda rgb: rgb
    if mode == "luminance":
        return content, list(styles), lambda rgb: luminance_transfer(original, rgb)
    if mode == "luminance-only":
        content_y = luminance(content)
        new_styles = [gray3(match_luminance(luminance(s), content_y)) for s in styles]
        return gray3(content_y), new_styles, lambda rgb: luminance_transfer(original, rgb)
    if mode == "histogram":
        reference = content if color_source is None else np.asarray(color_source, np.float32)
        new_styles = [np.clip(match_color_statistics(s, reference, method), 0, 255).astype(np.float32) for s in styles]
        return content, new_styles, lambda rgb: rgb
    raise ValueError(f"mode must be one of {PRESERVE_MODES}, not {mode!r}")


def fill_transparent(rgb, alpha):
    """RGB with fully transparent pixels set to the mean colour of the visible ones.

    What lies under alpha 0 is arbitrary (often black or leftover pixels); left as is
    it would leak into the start image and, through the receptive fields, into the
    content features of the visible pixels next to it.
    """
    rgb = np.array(rgb, np.float32, copy=True)
    if alpha is None:
        return rgb
    hidden = np.asarray(alpha) <= 0
    if hidden.all() or not hidden.any():
        return rgb
    rgb[hidden] = rgb[~hidden].mean(axis=0)
    return rgb

"""Occlusion operators of PaddleClas release/2.0: Cutout, GridMask, HideAndSeek.

Same names, parameters and defaults as release/2.0. Its DataAugment recipes place them after
``NormalizeImage`` (HWC float32), so the value written into a hidden region, 0, is the dataset
mean; they also work after ``ToCHWImage`` (the layout is read from the shape as RandomErasing
does) and on uint8 images (0 is then black). Each returns a new array; the input is not changed.

Randomness comes from NumPy's and Python's global generators, in release/2.0's order of draws;
the dataset reseeds both per (seed, epoch, sample), so the masks do not depend on the number of
loader workers, and a resumed run masks as an uninterrupted one.

Deliberate differences from release/2.0 (docs in README, "PaddleClas release/2.0 recipes"):

* release/2.0's GridMask and HideAndSeek read ``_, h, w = img.shape`` (CHW) although its recipes
  give them HWC images: there they mask along the width and channel axes. Ours mask the spatial
  grid, as the papers and release/2.0's own docs describe.
* release/2.0's GridMask probability is meant to ramp linearly from 0 to ``prob`` over 240
  epochs (the original ImageNet recipe's ``--st_epochs 240``), but its epoch counter is never
  advanced, so there it never fires. Ours ramps as intended (``ramp_epochs``, 0 = ``prob`` from
  the first epoch); the dataset passes the epoch through ``set_epoch``.
"""
import random

import numpy as np


def _layout(img):
    """(height, width, channels_first) of an HWC or CHW image (RandomErasing's rule)."""
    if img.ndim == 2:
        return img.shape[0], img.shape[1], False
    chw = img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3)
    return (img.shape[1], img.shape[2], True) if chw else (img.shape[0], img.shape[1], False)


def _apply_mask(img, keep, chw):
    """``img`` times a (h, w) 0/1 (or soft) mask, broadcast over the channels, in img's dtype."""
    if img.ndim == 3:
        keep = keep[None] if chw else keep[:, :, None]
    return (img * keep).astype(img.dtype, copy=False)


def _int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class Cutout:
    """``n_holes`` squares of side ``length`` set to 0, centres uniform over the image, clipped
    at the border (DeVries & Taylor 2017). As in release/2.0 and the paper's code, a hole spans
    ``length // 2`` on each side of its centre, so an odd length gives a side of length - 1."""

    def __init__(self, n_holes=1, length=112):
        self.n_holes = _int(n_holes, "n_holes", 0)
        self.length = _int(length, "length", 1)

    def __call__(self, img):
        h, w, chw = _layout(img)
        out = img.copy()
        half = self.length // 2
        for _ in range(self.n_holes):
            y, x = np.random.randint(h), np.random.randint(w)
            y1, y2 = max(y - half, 0), min(y + half, h)
            x1, x2 = max(x - half, 0), min(x + half, w)
            if chw:
                out[..., y1:y2, x1:x2] = 0
            else:
                out[y1:y2, x1:x2] = 0
        return out


class GridMask:
    """GridMask (Chen et al. 2020): with probability p, zero a grid of stripes.

    A square period ``d`` is drawn from [d1, d2); in each period ``l = int(d * ratio + 0.5)``
    rows and columns, at a random offset, are set to 0 (``mode: 0``; ``mode: 1`` keeps the
    stripes and zeroes the rest); the grid is drawn 1.5x the image size, rotated by a random
    whole angle in [0, rotate) degrees (rotate: 1 = no rotation) and centre-cropped.
    p = prob * min(1, epoch / ramp_epochs); ``ramp_epochs: 0`` gives p = prob throughout.
    """

    def __init__(self, d1=96, d2=224, rotate=1, ratio=0.5, mode=0, prob=1.0, ramp_epochs=240):
        self.d1 = _int(d1, "d1", 1)
        self.d2 = _int(d2, "d2", 2)
        if self.d2 <= self.d1:
            raise ValueError(f"d2 must be > d1 (the period is drawn from [d1, d2)), got "
                             f"d1={d1}, d2={d2}")
        self.rotate = _int(rotate, "rotate", 1)
        self.ratio = _fraction(ratio, "ratio")
        if mode not in (0, 1) or isinstance(mode, bool):
            raise ValueError(f"mode must be 0 (zero the grid stripes) or 1 (keep them), "
                             f"got {mode!r}")
        self.mode = mode
        self.prob = _fraction(prob, "prob")
        self.ramp_epochs = _int(ramp_epochs, "ramp_epochs", 0)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def current_prob(self):
        if not self.ramp_epochs:
            return self.prob
        return self.prob * min(1.0, self.epoch / self.ramp_epochs)

    def keep_mask(self, h, w):
        """The (h, w) float32 mask, 1 = kept; draws d, the two offsets and the angle."""
        hh, ww = int(1.5 * h), int(1.5 * w)
        d = np.random.randint(self.d1, self.d2)
        stripe = int(d * self.ratio + 0.5)
        st_h, st_w = np.random.randint(d), np.random.randint(d)
        rows = (np.arange(hh) - st_h) % d < stripe
        cols = (np.arange(ww) - st_w) % d < stripe
        mask = (~(rows[:, None] | cols[None, :])).astype(np.uint8)
        angle = np.random.randint(self.rotate)
        if angle:
            from PIL import Image           # nearest-neighbour, about the centre, 0 outside
            mask = np.asarray(Image.fromarray(mask).rotate(angle))
        top, left = (hh - h) // 2, (ww - w) // 2
        mask = mask[top:top + h, left:left + w].astype(np.float32)
        return 1.0 - mask if self.mode == 1 else mask

    def __call__(self, img):
        if not np.random.rand() < self.current_prob():
            return img
        h, w, chw = _layout(img)
        return _apply_mask(img, self.keep_mask(h, w), chw)


class HideAndSeek:
    """Hide-and-Seek (Singh & Lee 2017): pick a grid size from ``grid_sizes`` (0: leave the
    image as it is), then set each grid cell to 0 with probability ``hide_prob``. release/2.0
    takes no parameters (sizes 0/16/32/44/56, probability 0.5); both are optional here."""

    def __init__(self, grid_sizes=(0, 16, 32, 44, 56), hide_prob=0.5):
        sizes = list(grid_sizes) if isinstance(grid_sizes, (list, tuple)) else None
        if not sizes or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in sizes):
            raise ValueError(f"grid_sizes must be a non-empty list of integers >= 0, got "
                             f"{grid_sizes!r}")
        self.grid_sizes = sizes
        self.hide_prob = _fraction(hide_prob, "hide_prob")

    def keep_mask(self, h, w, grid):
        """(h, w) float32, 1 = kept. One draw per cell, columns outer and rows inner as in
        release/2.0 (a cell is hidden when the draw is <= hide_prob)."""
        ny, nx = -(-h // grid), -(-w // grid)
        hidden = np.array([random.random() <= self.hide_prob for _ in range(nx * ny)])
        cells = (~hidden).reshape(nx, ny).T.astype(np.float32)
        return np.repeat(np.repeat(cells, grid, 0), grid, 1)[:h, :w]

    def __call__(self, img):
        grid = int(np.random.choice(self.grid_sizes))
        if grid == 0:
            return img
        h, w, chw = _layout(img)
        return _apply_mask(img, self.keep_mask(h, w, grid), chw)


MASK_OPS = {cls.__name__: cls for cls in (Cutout, GridMask, HideAndSeek)}

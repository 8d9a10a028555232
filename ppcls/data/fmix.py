"""FMix (Harris et al. 2020) as release/2.0's ``FmixOperator``: a batch operator beside Mixup
and CutMix (``use_mix: True``, ``TRAIN.mix``).

A mask is cut from a random low-frequency image (normal Fourier coefficients scaled by
1 / f**decay_power, transformed back; see ``low_freq_image``): its top ``lam`` fraction of pixels
is set to 1 (``max_soft`` > 0 ramps the values across the edge). ``lam`` is drawn from
Beta(alpha, alpha) (``reformulate``: Beta(alpha + 1, alpha)) and weighs the loss of the kept
images' labels, as in release/2.0: the sampled value, which the hard mask's mean matches to
within one pixel (1 / (H * W)).

Every draw comes from the mixer's generator (release/2.0 uses NumPy's, SciPy's and Python's
global ones), in release/2.0's order: permutation, lam, spectrum, rounding coin.
"""
import math

import numpy as np
import paddle


def low_freq_image(h, w, decay_power, rng):
    """(h, w) float image in [0, 1] from random Fourier coefficients scaled by 1 / f**decay_power.

    The coefficients are placed as the canonical FMix code (ecs-vlc/FMix, copied by release/2.0)
    places them, so the masks have its distribution: that code draws a full (h, w//2+1) grid
    but keeps only its first two rows (vertical frequencies 0 and 1/h), laid out as the first
    columns (horizontal bins 0 and 1) of the inverse transform's input: entry (k, j) =
    s(0, k) a + i s(1, k) b, with s(i, k) the scale at vertical bin i, horizontal bin k (for an
    odd width it keeps one extra, negative-frequency bin). The masks are smooth, one or a few
    blobs spanning the image, as in the FMix paper's figures."""
    fx = np.fft.fftfreq(w)[:w // 2 + 1 + w % 2]
    fy = np.fft.fftfreq(h)[:2, None] if h > 1 else np.zeros((2, 1))
    scale = 1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / max(h, w)) ** decay_power
    rows, cols = min(len(fx), h), min(2, w // 2 + 1)
    parts = rng.standard_normal((2, len(fx), 2))         # real, imaginary
    coef = np.zeros((h, w // 2 + 1), np.complex128)
    coef[:rows, :cols] = (scale[0, :rows, None] * parts[0, :rows, :cols]
                          + 1j * scale[1, :rows, None] * parts[1, :rows, :cols])
    img = np.fft.irfft2(coef, s=(h, w))
    img = img - img.min()
    return img / max(img.max(), 1e-12)


def binarise(img, lam, max_soft, rng):
    """The ``lam`` fraction of highest pixels -> 1, the rest -> 0; with ``max_soft`` a linear
    ramp 1 -> 0 over up to ``max_soft`` of the pixels on each side of the cut. The count is
    rounded up or down at random, as release/2.0 does."""
    flat = img.reshape(-1)
    order = flat.argsort()[::-1]
    n = flat.size
    num = math.ceil(lam * n) if rng.rand() > 0.5 else math.floor(lam * n)
    soft = int(n * min(max_soft, lam, 1.0 - lam)) if max_soft > 0 else 0
    low, high = num - soft, num + soft
    mask = np.zeros(n, np.float32)
    mask[order[:max(low, 0)]] = 1.0
    if high > low:
        mask[order[low:high]] = np.linspace(1.0, 0.0, high - low)
    return mask.reshape(img.shape)


class FmixOperator:
    def __init__(self, alpha=1.0, decay_power=3.0, max_soft=0.0, reformulate=False):
        for name, value in (("alpha", alpha), ("decay_power", decay_power)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if isinstance(max_soft, bool) or not isinstance(max_soft, (int, float)) \
                or not 0 <= max_soft <= 0.5:
            raise ValueError(f"max_soft must be a number in [0, 0.5], got {max_soft!r}")
        if not isinstance(reformulate, bool):
            raise ValueError(f"reformulate must be true or false, got {reformulate!r}")
        self.alpha, self.decay_power = float(alpha), float(decay_power)
        self.max_soft, self.reformulate = float(max_soft), reformulate

    def sample(self, h, w, rng):
        """(lam, (h, w) float32 mask); 1 keeps the image, 0 takes its partner's pixel."""
        a = self.alpha
        lam = float(rng.beta(a + 1.0, a) if self.reformulate else rng.beta(a, a))
        return lam, binarise(low_freq_image(h, w, self.decay_power, rng), lam, self.max_soft, rng)

    def __call__(self, images, labels, rng):
        n, _, h, w = images.shape
        perm = rng.permutation(n)
        lam, mask = self.sample(h, w, rng)
        mask = paddle.to_tensor(mask[None, None], place=images.place)
        perm_t = paddle.to_tensor(perm)
        mixed = images * mask + paddle.gather(images, perm_t) * (1.0 - mask)
        return mixed, labels, paddle.gather(labels, perm_t), lam

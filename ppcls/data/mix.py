"""Batch mixing (``use_mix``): Mixup, CutMix and FMix (fmix.py) on a whole batch, on the device.

Each returns the mixed images plus (labels_a, labels_b, lam); the loss is
``lam * loss(labels_a) + (1 - lam) * loss(labels_b)``.
"""
import numpy as np
import paddle

from ..utils.config import check_params
from .fmix import FmixOperator


class MixupOperator:
    def __init__(self, alpha=0.2):
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def __call__(self, images, labels, rng):
        lam = float(rng.beta(self.alpha, self.alpha))
        perm = paddle.to_tensor(rng.permutation(images.shape[0]))
        mixed = lam * images + (1.0 - lam) * paddle.gather(images, perm)
        return mixed, labels, paddle.gather(labels, perm), lam


class CutmixOperator:
    def __init__(self, alpha=0.2):
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = alpha

    def __call__(self, images, labels, rng):
        lam = float(rng.beta(self.alpha, self.alpha))
        n, _, h, w = images.shape
        perm = paddle.to_tensor(rng.permutation(n))
        cut = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = rng.randint(h), rng.randint(w)
        y1, y2 = np.clip([cy - ch // 2, cy + ch // 2], 0, h)
        x1, x2 = np.clip([cx - cw // 2, cx + cw // 2], 0, w)
        mask = np.zeros((1, 1, h, w), np.float32)
        mask[..., y1:y2, x1:x2] = 1.0
        mask = paddle.to_tensor(mask)
        mixed = images * (1.0 - mask) + paddle.gather(images, perm) * mask
        lam = 1.0 - float((y2 - y1) * (x2 - x1)) / (h * w)   # the area actually kept
        return mixed, labels, paddle.gather(labels, perm), lam


MIX_OPS = {"MixupOperator": MixupOperator, "CutmixOperator": CutmixOperator,
           "FmixOperator": FmixOperator}


def check_mix_ops(ops, where):
    for i, item in enumerate(ops):
        (name, params), = item.items()
        sub = where.child(f"{i}.{name}")
        if name not in MIX_OPS:
            raise sub.error(f"unknown batch operator; available: {', '.join(MIX_OPS)}")
        check_params(MIX_OPS[name].__init__, params, sub)
        try:
            MIX_OPS[name](**params)
        except ValueError as e:
            raise sub.error(str(e)) from None


class BatchMixer:
    """Picks one of the configured operators per batch (PaddleClas applies them in turn)."""

    def __init__(self, ops, seed=0):
        self.ops = [MIX_OPS[name](**params) for item in ops for name, params in item.items()]
        self.rng = np.random.RandomState(seed)

    def __call__(self, images, labels):
        op = self.ops[self.rng.randint(len(self.ops))]
        return op(images, labels, self.rng)

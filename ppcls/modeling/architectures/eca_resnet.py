"""ECA-Net (Wang et al., CVPR 2020): ECA-ResNets and ECA-MobileNetV2, as BangguWu/ECANet builds them.

* ECA-ResNet = torchvision ResNet (resnet.py) with an ECA layer named ``eca`` after the last BN
  of every residual branch, before the add. Its kernel is fixed per stage (``k_size``, four
  values; the official ``--ksize 3557`` string is accepted too), not the adaptive formula.
* ECA-MobileNetV2 = MobileNetV2 (mobilenet_v2.py) with the ECA layer as the last child of each
  inverted residual's ``conv`` Sequential (after the projection BN), k = 1 for rows of the
  setting table with c < 96, else 3; classifier dropout 0.25. The official code scales channels
  with ``int(c * width_mult)`` (no rounding to 8) and picks k from the unscaled ``c``.
* Init as the official code: conv N(0, sqrt(2 / (k*k*out))), BN 1/0; the ECA Conv1d is left to
  PyTorch's default U(+-1/sqrt(k)) (the official loops only touch Conv2d), mirrored here.
"""
import math

import paddle
import paddle.nn as nn

from ..registry import register_model
from .layers import ECA
from .mobilenet_v2 import MobileNetV2Net
from .resnet import BasicBlock, Bottleneck, ResNet


def _check_k(k):
    k = int(k)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"ECA kernel sizes must be odd and positive, got {k}")
    return k


def parse_k_size(k_size, n):
    """``[3, 5, 5, 7]``, ``(3, 5, 5, 7)``, ``"3557"`` or ``3557`` -> list of ``n`` odd ints.

    The official spelling (``--ksize 3557``, ``eca_mobilenetv2_k13``) is one digit per value;
    an unquoted YAML ``3557`` arrives as an int, so an int with exactly ``n`` digits (n > 1) is
    read digit by digit; any other int is one kernel for every position."""
    if isinstance(k_size, int) and not isinstance(k_size, bool):
        k_size = str(k_size) if n > 1 and len(str(k_size)) == n else [k_size] * n
    ks = [_check_k(k) for k in (list(k_size) if not isinstance(k_size, str) else k_size)]
    if len(ks) != n:
        raise ValueError(f"k_size needs {n} values, got {k_size!r}")
    return ks


def init_eca_(layer):
    """PyTorch's default Conv1d init for every ECA conv under ``layer``: U(+-1/sqrt(fan_in))."""
    for m in layer.sublayers(include_self=True):
        if isinstance(m, ECA):
            w = m.conv.weight                       # [1, 1, k]
            bound = 1.0 / math.sqrt(int(w.shape[1] * w.shape[2]))
            w.set_value(paddle.uniform(w.shape, w.dtype, -bound, bound))


class ECAResNet(ResNet):
    """torchvision ResNet whose every block carries ``eca`` = ECA(k_size[stage])."""

    def __init__(self, block, layers, k_size=(3, 3, 3, 3), class_dim=1000, **kw):
        self.k_size = parse_k_size(k_size, 4)      # read by block_kwargs during ResNet.__init__
        super().__init__(block, layers, class_dim=class_dim, **kw)

    def block_kwargs(self, stage, index):
        return {"attn": ("eca", ECA(k_size=self.k_size[stage]))}

    def init_weights(self, zero_init_residual=False):
        super().init_weights(zero_init_residual)
        init_eca_(self)


def eca_k_size(base_channels, k_size=(1, 3), threshold=96):
    """Official ECA-MobileNetV2 rule: k_size[0] when the row's unscaled c < 96, else k_size[1]."""
    return k_size[0] if base_channels < threshold else k_size[1]


class ECAMobileNetV2Net(MobileNetV2Net):
    """Official ``ECA_MobileNetV2``: ``k_size`` = (k for c < 96, k for c >= 96), or one int."""

    def __init__(self, class_dim=1000, width_mult=1.0, k_size=(1, 3), dropout=0.25, **kw):
        self.k_size = parse_k_size(k_size, 2)
        super().__init__(class_dim=class_dim, width_mult=width_mult, dropout=dropout, **kw)

    def scale_channels(self, channels, multiplier):
        return int(channels * multiplier)

    def block_kwargs(self, spec):
        return {"attn": ECA(spec.oup, k_size=eca_k_size(spec.base_channels, self.k_size))}

    def init_weights(self):
        super().init_weights()
        init_eca_(self)


@register_model(paper_top1=70.92, family="ECA-Net")
def ECA_ResNet18(class_dim=1000, k_size=(3, 5, 7, 7), **kw):
    return ECAResNet(BasicBlock, [2, 2, 2, 2], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=74.21, family="ECA-Net")
def ECA_ResNet34(class_dim=1000, k_size=(3, 3, 5, 7), **kw):
    return ECAResNet(BasicBlock, [3, 4, 6, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=77.42, family="ECA-Net")
def ECA_ResNet50(class_dim=1000, k_size=(3, 5, 5, 7), **kw):
    return ECAResNet(Bottleneck, [3, 4, 6, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=78.65, family="ECA-Net")
def ECA_ResNet101(class_dim=1000, k_size=(3, 3, 5, 7), **kw):
    return ECAResNet(Bottleneck, [3, 4, 23, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=78.92, family="ECA-Net")
def ECA_ResNet152(class_dim=1000, k_size=(3, 3, 5, 7), **kw):
    return ECAResNet(Bottleneck, [3, 8, 36, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=72.56, family="ECA-Net")
def ECA_MobileNetV2(class_dim=1000, k_size=(1, 3), **kw):
    """kw: width_mult, dropout (0.25), inverted_residual_setting."""
    return ECAMobileNetV2Net(class_dim=class_dim, k_size=k_size, **kw)

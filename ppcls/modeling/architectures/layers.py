"""Blocks shared by several families.

Layer attribute names follow the official PyTorch code (``conv``, ``0``/``1``/``2`` inside
Sequentials) so that official checkpoints convert by name, not by position.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def make_divisible(value, divisor=8, min_value=None):
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it
    (the rule of the TF MobileNet code that torchvision, ReXNet-lite and ECA copy)."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def conv_bn_act(in_ch, out_ch, kernel_size=3, stride=1, padding=None, groups=1, act=None):
    """``Sequential(conv, bn[, act])`` with children named 0/1/2, as torchvision's ConvBNReLU."""
    if padding is None:
        padding = (kernel_size - 1) // 2
    layers = [nn.Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                        groups=groups, bias_attr=False),
              nn.BatchNorm2D(out_ch)]
    if act is not None:
        layers.append(act() if isinstance(act, type) else act)
    return nn.Sequential(*layers)


class ECA(nn.Layer):
    """Efficient channel attention: GAP -> Conv1d(1, 1, k) across channels -> sigmoid -> scale.

    ``k_size`` is given by the caller: the fixed per-stage kernel of the released ECA models, or
    ``eca_kernel_size(channels)`` (the paper's adaptive rule). The parameter is named
    ``conv.weight`` [1, 1, k] like the official eca_layer.
    """

    def __init__(self, channels=None, k_size=3):
        super().__init__()
        self.k_size = k_size
        self.conv = nn.Conv1D(1, 1, k_size, padding=(k_size - 1) // 2, bias_attr=False)

    def forward(self, x):
        # Pooling and reshapes rather than mean(axis=[2, 3]) and (un)squeeze: the same numbers,
        # but Paddle 3.3's oneDNN predictor runs this form 2.2x faster for ECA-ResNet50 (the
        # other kept the whole model on a slow path; docs/speed.md).
        c = x.shape[1]
        y = F.adaptive_avg_pool2d(x, 1).reshape([-1, 1, c])       # N, 1, C
        y = F.sigmoid(self.conv(y))
        return x * y.reshape([-1, c, 1, 1])


def eca_kernel_size(channels, gamma=2, b=1):
    """ECA-Net's adaptive kernel size psi(C) = |log2(C) / gamma + b / gamma|_odd, as the
    official eca_layer computes it: t = int(|(log2(C) + b) / gamma|), then t, or t + 1 when t
    is even (64 -> 3, 128 -> 5, 256 -> 5, 512 -> 5, 1024 -> 5, 2048 -> 7)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


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


def init_eca_(layer):
    """PyTorch's default Conv1d init for every ECA conv under ``layer``: U(+-1/sqrt(fan_in))
    (the official ECA models' init loops only touch Conv2d)."""
    for m in layer.sublayers(include_self=True):
        if isinstance(m, ECA):
            w = m.conv.weight                       # [1, 1, k]
            bound = 1.0 / math.sqrt(int(w.shape[1] * w.shape[2]))
            w.set_value(paddle.uniform(w.shape, w.dtype, -bound, bound))


def torch_linear(in_features, out_features):
    """torch's default Linear weight init (uniform +-1/sqrt(in)) with a zero bias: the official
    ED-Net init loop sets every ``*.bias`` of the model to 0 and leaves Linear weights at torch's
    default."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Linear(in_features, out_features,
                     weight_attr=paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound)),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


class SELayer(nn.Layer):
    """Squeeze-and-excitation as in the official ED-SE models (SENet's block): global average
    pool -> Linear(C, C//reduction) -> ReLU -> Linear(C//reduction, C) -> sigmoid -> scale.
    Linear (not 1x1 conv) layers, named ``fc_reduction`` / ``fc_extention`` like the official
    attributes."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc_reduction = torch_linear(channels, channels // reduction)
        self.fc_extention = torch_linear(channels // reduction, channels)

    def forward(self, x):
        c = x.shape[1]
        y = F.adaptive_avg_pool2d(x, 1).reshape([-1, c])     # oneDNN-friendly form, see ECA
        y = F.sigmoid(self.fc_extention(F.relu(self.fc_reduction(y))))
        return x * y.reshape([-1, c, 1, 1])


def kaiming_normal_fan_out_(layer):
    """torchvision's ``kaiming_normal_(mode='fan_out', nonlinearity='relu')`` for convs,
    BN weight 1 / bias 0; used by the ResNet-derived families for training from scratch."""
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, (nn.Conv2D, nn.Conv2DTranspose)):
            w = sub.weight
            # torch takes fan_out from dim 0 of the weight, for transposed convs too.
            fan_out = w.shape[0] * w.shape[2] * w.shape[3]
            std = math.sqrt(2.0 / fan_out)
            w.set_value(paddle.normal(0.0, std, w.shape).astype(w.dtype))
        elif isinstance(sub, (nn.BatchNorm2D, nn.BatchNorm1D, nn.BatchNorm)):
            sub.weight.set_value(paddle.ones_like(sub.weight))
            sub.bias.set_value(paddle.zeros_like(sub.bias))


class DropPath(nn.Layer):
    """Stochastic depth per sample (identity at eval or when ``drop_prob`` is 0)."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = paddle.bernoulli(paddle.full([x.shape[0]] + [1] * (x.ndim - 1), keep, x.dtype))
        return x / keep * mask

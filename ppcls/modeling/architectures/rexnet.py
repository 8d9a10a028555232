"""ReXNet and ReXNet-lite as the official clovaai/rexnet code builds them (``ReXNetV1`` and
``ReXNetV1_lite``), so the official checkpoints convert by name.

Layout (16 inverted bottlenecks, stages [1, 2, 2, 3, 3, 5], strides [1, 2, 2, 2, 1, 2], expansion 1
for the first block and 6 after). Every layer sits in two flat Sequentials, as in the official
code:

* ``features``: 0-2 stem (3x3/2 conv, BN, SiLU | ReLU6 for lite), 3-18 the blocks, 19-21 the
  1x1 "penultimate" conv, BN, SiLU | ReLU6; ReXNet keeps its global pool at ``features.22``
  (ReXNet-lite has it as ``avgpool``).
* ``output``: ReXNet ``[Dropout, Conv1x1 classifier]``; ReXNet-lite ``[Conv1x1 -> 1024 (bias),
  BN, ReLU6, Dropout, Conv1x1 classifier]``. The classifier is a 1x1 conv with bias, as official.

Official details kept here:

* Block (``LinearBottleneck``, Sequential ``out``): [1x1 expand, BN, SiLU] -> depthwise 3x3 (stride),
  BN, no activation -> SE (stages 3-6) -> ReLU6 -> 1x1 project, BN. Lite: ReLU6 after the expand
  and after the depthwise BN, no SE.
* SE (``out.5``): GAP -> 1x1 conv C -> C // 12 with bias -> BN -> ReLU -> 1x1 conv with bias ->
  sigmoid -> x * y (a BN inside the SE, unlike SENet).
* Partial residual: when stride is 1 and in <= out, the input is added to the first ``in``
  channels of the output only. Written as ``out + concat(x, zeros)`` (x zero-filled to ``out``'s
  channels): the same numbers as the official in-place slice add (adding 0 is exact),
  differentiable, traced by ``paddle.jit.to_static``. In dygraph training it is ~3x faster than
  ``concat(out[:, :in] + x, out[:, in:])``, whose slice gradients allocate and copy full-size
  zero tensors (docs/speed.md). (``F.pad`` over the channel axis is as fast, but Paddle 3.3's
  oneDNN predictor hangs on it.)
* Channels grow by 180/16 (lite: 164/15, rounded to multiples of 8) per block, accumulated in float
  exactly as the official loop does; widths below 1 keep a 32-channel stem and 16-channel first block.
  (ReXNet-lite x1.0 thus ends at 184 channels: 16 + 164 = 180, made divisible by 8.)
  ReXNet's head conv is ``int(1280 * w)``; ReXNet-lite's is 1280 unless w > 1.
* Init: the official code sets none, so PyTorch's defaults are mirrored at construction
  (``conv2d``): conv weights and biases uniform(+-1/sqrt(fan_in)); BN weight 1 / bias 0.

Additions (off by default, no parameters): ``drop_path_rate`` adds stochastic depth on the residual
branch of the blocks that have a shortcut, rate ``drop_path_rate * i / 15`` for block ``i`` (the
linear rule timm uses for ReXNet). ``forward_stages`` returns the outputs of features.5 (stride 4,
end of stage 2), features.7 (stride 8, end of stage 3), features.13 (stride 16, end of stage 5) and
features.21 (stride 32: the activated head conv, the final map before pooling).
"""
import math

import paddle
import paddle.nn as nn

from ..registry import register_model
from .layers import DropPath, make_divisible

STAGE_BLOCKS = (1, 2, 2, 3, 3, 5)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2)
STAGE_SE = (False, False, True, True, True, True)
STEM_LAYERS = 3            # features.0-2: conv, BN, act


def _per_block(values):
    """Expand one value per stage into one value per block."""
    return [v for n, v in zip(STAGE_BLOCKS, values) for _ in range(n)]


def _block_strides():
    return [s if i == 0 else 1 for n, s in zip(STAGE_BLOCKS, STAGE_STRIDES) for i in range(n)]


def _expansions():
    return [1] * STAGE_BLOCKS[0] + [6] * (sum(STAGE_BLOCKS) - STAGE_BLOCKS[0])


def rexnet_channels(width_mult):
    """(stem, [block outputs], head) of ``ReXNetV1(width_mult)``."""
    n = sum(STAGE_BLOCKS)
    stem = int(round((32 / width_mult if width_mult < 1.0 else 32) * width_mult))
    planes = 16 / width_mult if width_mult < 1.0 else 16
    outs = [int(round(planes * width_mult))]
    for _ in range(1, n):
        planes += 180 / (n * 1.0)
        outs.append(int(round(planes * width_mult)))
    return stem, outs, int(1280 * width_mult)


def rexnet_lite_channels(width_mult, divisor=8):
    """(stem, [block outputs], head) of ``ReXNetV1_lite(multiplier=width_mult)``."""
    n = sum(STAGE_BLOCKS)
    stem = make_divisible(int(round((32 / width_mult if width_mult < 1.0 else 32) * width_mult)),
                          divisor)
    planes = 16 / width_mult if width_mult < 1.0 else 16
    outs = [make_divisible(int(round(planes * width_mult)), divisor)]
    for _ in range(1, n):
        planes += 164 / (n - 1 * 1.0)
        outs.append(make_divisible(int(round(planes * width_mult)), divisor))
    return stem, outs, int(1280 * width_mult) if width_mult > 1 else 1280


def conv2d(in_ch, out_ch, kernel=1, stride=1, groups=1, bias=True):
    """``nn.Conv2D`` with PyTorch's default init (the official ReXNet code sets no other):
    weight and bias uniform(+-1/sqrt(fan_in)), fan_in = in/groups * k * k."""
    bound = 1.0 / math.sqrt(in_ch // groups * kernel * kernel)
    init = nn.initializer.Uniform(-bound, bound)
    return nn.Conv2D(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2,
                     groups=groups, weight_attr=paddle.ParamAttr(initializer=init),
                     bias_attr=paddle.ParamAttr(initializer=init) if bias else False)


def _conv_bn(layers, in_ch, out_ch, kernel=1, stride=1, groups=1, act=None):
    """Append conv (no bias), BN and an optional activation to a flat layer list, as the
    official ``ConvBNAct``/``ConvBNSiLU``/``_add_conv`` helpers do."""
    layers.append(conv2d(in_ch, out_ch, kernel, stride, groups, bias=False))
    layers.append(nn.BatchNorm2D(out_ch))
    if act is not None:
        layers.append(act())


class SE(nn.Layer):
    """ReXNet's squeeze-excitation: GAP, 1x1 conv (bias), BN, ReLU, 1x1 conv (bias), sigmoid."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Sequential(
            conv2d(channels, reduced),
            nn.BatchNorm2D(reduced),
            nn.ReLU(),
            conv2d(reduced, channels),
            nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(self.avg_pool(x))


class LinearBottleneck(nn.Layer):
    """Inverted bottleneck with ReXNet's partial residual (see the module docstring)."""

    def __init__(self, in_ch, out_ch, expansion, stride, use_se=False, se_ratio=12, lite=False,
                 drop_path=0.0):
        super().__init__()
        self.in_channels = in_ch
        self.out_channels = out_ch
        self.use_shortcut = stride == 1 and in_ch <= out_ch
        expand_act = nn.ReLU6 if lite else nn.Silu
        layers = []
        if expansion != 1:
            mid = in_ch * expansion
            _conv_bn(layers, in_ch, mid, act=expand_act)
        else:
            mid = in_ch
        _conv_bn(layers, mid, mid, 3, stride, groups=mid, act=nn.ReLU6 if lite else None)
        if not lite:
            if use_se:
                layers.append(SE(mid, mid // se_ratio))
            layers.append(nn.ReLU6())
        _conv_bn(layers, mid, out_ch)
        self.out = nn.Sequential(*layers)
        self.drop_path = DropPath(drop_path) if self.use_shortcut and drop_path > 0 else None

    def forward(self, x):
        out = self.out(x)
        if not self.use_shortcut:
            return out
        if self.drop_path is not None:
            out = self.drop_path(out)
        if self.in_channels == self.out_channels:
            return out + x
        zeros = paddle.zeros_like(out[:, self.in_channels:])      # no gradient flows here
        return out + paddle.concat([x, zeros], axis=1)


class _ReXNetBase(nn.Layer):
    """Shared trunk: ``features`` = stem, 16 blocks, head conv; subclasses add the pool/output."""

    lite = False

    def _build_features(self, stem, outs, head, drop_path_rate, se_ratio=12):
        act = nn.ReLU6 if self.lite else nn.Silu
        layers = []
        _conv_bn(layers, 3, stem, 3, 2, act=act)
        strides = _block_strides()
        ses = _per_block(STAGE_SE)
        n = len(outs)
        ins = [stem] + outs[:-1]
        for i, (c_in, c_out, t, s) in enumerate(zip(ins, outs, _expansions(), strides)):
            layers.append(LinearBottleneck(c_in, c_out, t, s, use_se=ses[i] and not self.lite,
                                           se_ratio=se_ratio, lite=self.lite,
                                           drop_path=drop_path_rate * i / (n - 1)))
        _conv_bn(layers, outs[-1], head, act=act)
        self.num_trunk = len(layers)            # features.0 .. features.21
        # A stage ends before the next stride-2 block; the stride-32 map is the head conv's.
        ends = [STEM_LAYERS + i - 1 for i in range(1, n) if strides[i] == 2]
        self.stage_ends = ends[1:] + [self.num_trunk - 1]          # skip the stride-2 stem output
        self.stage_channels = [outs[e - STEM_LAYERS] for e in self.stage_ends[:-1]] + [head]
        self.num_features = head
        return layers

    def forward_stages(self, x):
        """Feature maps at strides 4, 8, 16, 32 (channels in ``stage_channels``)."""
        feats = []
        for i in range(self.num_trunk):
            x = self.features[i](x)
            if i in self.stage_ends:
                feats.append(x)
        return feats

    def forward_features(self, x):
        return self.forward_stages(x)[-1]

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class ReXNetV1(_ReXNetBase):
    """``ReXNetV1(width_mult=w)`` of the official code."""

    def __init__(self, width_mult=1.0, class_dim=1000, dropout=0.2, drop_path_rate=0.0,
                 se_ratio=12):
        super().__init__()
        self.width_mult = width_mult
        stem, outs, head = rexnet_channels(width_mult)
        layers = self._build_features(stem, outs, head, drop_path_rate, se_ratio)
        layers.append(nn.AdaptiveAvgPool2D(1))                     # features.22
        self.features = nn.Sequential(*layers)
        self.output = nn.Sequential(nn.Dropout(dropout), conv2d(head, class_dim))

    def forward_head(self, x):
        return paddle.flatten(self.output(self.features[self.num_trunk](x)), 1)


class ReXNetV1Lite(_ReXNetBase):
    """``ReXNetV1_lite(multiplier=w)`` of the official code."""

    lite = True

    def __init__(self, width_mult=1.0, class_dim=1000, dropout=0.2, drop_path_rate=0.0):
        super().__init__()
        self.width_mult = width_mult
        stem, outs, head = rexnet_lite_channels(width_mult)
        self.features = nn.Sequential(*self._build_features(stem, outs, head, drop_path_rate))
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.output = nn.Sequential(
            conv2d(head, 1024),
            nn.BatchNorm2D(1024),
            nn.ReLU6(),
            nn.Dropout(dropout),
            conv2d(1024, class_dim))

    def forward_head(self, x):
        return paddle.flatten(self.output(self.avgpool(x)), 1)


_FAMILY = "ReXNet"


@register_model(paper_top1=77.2, family=_FAMILY)
def ReXNet_0_9(class_dim=1000, **kw):
    return ReXNetV1(width_mult=0.9, class_dim=class_dim, **kw)


@register_model(paper_top1=77.9, family=_FAMILY)
def ReXNet_1_0(class_dim=1000, **kw):
    return ReXNetV1(width_mult=1.0, class_dim=class_dim, **kw)


@register_model(paper_top1=79.5, family=_FAMILY)
def ReXNet_1_3(class_dim=1000, **kw):
    return ReXNetV1(width_mult=1.3, class_dim=class_dim, **kw)


@register_model(paper_top1=80.3, family=_FAMILY)
def ReXNet_1_5(class_dim=1000, **kw):
    return ReXNetV1(width_mult=1.5, class_dim=class_dim, **kw)


@register_model(paper_top1=81.6, family=_FAMILY)
def ReXNet_2_0(class_dim=1000, **kw):
    return ReXNetV1(width_mult=2.0, class_dim=class_dim, **kw)


@register_model(family=_FAMILY)        # no ImageNet top-1 published for width 2.2
def ReXNet_2_2(class_dim=1000, **kw):
    return ReXNetV1(width_mult=2.2, class_dim=class_dim, **kw)


@register_model(paper_top1=82.8, family=_FAMILY)
def ReXNet_3_0(class_dim=1000, **kw):
    return ReXNetV1(width_mult=3.0, class_dim=class_dim, **kw)


@register_model(paper_top1=76.2, family=_FAMILY)
def ReXNet_lite_1_0(class_dim=1000, **kw):
    return ReXNetV1Lite(width_mult=1.0, class_dim=class_dim, **kw)


@register_model(paper_top1=77.8, family=_FAMILY)
def ReXNet_lite_1_3(class_dim=1000, **kw):
    return ReXNetV1Lite(width_mult=1.3, class_dim=class_dim, **kw)


@register_model(paper_top1=78.6, family=_FAMILY)
def ReXNet_lite_1_5(class_dim=1000, **kw):
    return ReXNetV1Lite(width_mult=1.5, class_dim=class_dim, **kw)


@register_model(paper_top1=80.2, family=_FAMILY)
def ReXNet_lite_2_0(class_dim=1000, **kw):
    return ReXNetV1Lite(width_mult=2.0, class_dim=class_dim, **kw)

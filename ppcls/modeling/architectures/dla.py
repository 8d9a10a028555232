"""DLA (Deep Layer Aggregation, Yu et al. 2018) as the official ucbdrive/dla code builds it.

Structure (see shared ARCHITECTURES.md): a 7x7 stride-1 stem (``base_layer``), two plain conv
levels (``level0``, ``level1``), then four aggregation ``Tree``s (``level2``..``level5``), each
halving the resolution, global average pooling and a 1x1 conv classifier with bias (``fc``).
Attribute names mirror the official modules so official checkpoints convert by name.

Two deliberate departures from the official code, neither changing the computed function:

* A tree with more than one level builds a ``project`` (1x1 conv + BN) in the official code,
  but hands its output to a sub-tree that ignores it. Those dead layers are not built here
  (as timm and PaddleClas do); ``ppcls/convert/dla.py`` drops their checkpoint keys and reports
  how many. Parameter counts therefore equal the "without dead DLA projections" column.
* The official ``dla102x2()`` sets ``BottleneckX.cardinality = 64`` on the class, which leaks
  into every later X model of the process. Here cardinality is a per-instance argument.

The official ``AvgPool2d(7)`` is replaced by global average pooling (identical at 224), so any
input whose side is a multiple of 32 works.
"""
import math
from functools import partial

import paddle
import paddle.nn as nn

from ..registry import register_model

__all__ = ["DLA", "Tree", "Root", "BasicBlock", "Bottleneck", "DLA_CONFIGS"]


def _conv(in_ch, out_ch, kernel_size, stride=1, groups=1, bias=False):
    """Conv with the official init built in: weight N(0, sqrt(2 / (k*k*out))) (groups ignored,
    as in the official loop); a bias keeps PyTorch's default uniform(+-1/sqrt(fan_in)).
    Initialising at construction avoids paying for a default init and then a second one."""
    std = math.sqrt(2.0 / (kernel_size * kernel_size * out_ch))
    weight = paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, std))
    bias_attr = False
    if bias:
        bound = 1.0 / math.sqrt(in_ch // groups * kernel_size * kernel_size)
        bias_attr = paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    return nn.Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                     groups=groups, weight_attr=weight, bias_attr=bias_attr)


def _conv_bn(in_ch, out_ch, kernel_size, stride=1, relu=False):
    """``Sequential(conv, bn[, relu])`` named 0/1/2 like the official ``base_layer`` and
    ``project`` (layers.conv_bn_act with the official conv init; Paddle's BN init is 1/0)."""
    layers = [_conv(in_ch, out_ch, kernel_size, stride), nn.BatchNorm2D(out_ch)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BasicBlock(nn.Layer):
    """Two 3x3 convs (stride on the first); the residual may be given by the enclosing tree."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = nn.BatchNorm2D(planes)
        self.relu = nn.ReLU()
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2D(planes)

    def forward(self, x, residual=None):
        if residual is None:
            residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Layer):
    """1x1 -> 3x3 (stride, ``groups``) -> 1x1 with an inner width of ``width``.

    DLA's plain Bottleneck uses width = planes // 2 and groups = 1; its BottleneckX uses
    width = planes * cardinality // 32 and groups = cardinality (see ``bottleneck_x``).
    """

    def __init__(self, inplanes, planes, stride=1, width=None, groups=1):
        super().__init__()
        width = planes // 2 if width is None else width
        self.conv1 = _conv(inplanes, width, 1)
        self.bn1 = nn.BatchNorm2D(width)
        self.conv2 = _conv(width, width, 3, stride, groups)
        self.bn2 = nn.BatchNorm2D(width)
        self.conv3 = _conv(width, planes, 1)
        self.bn3 = nn.BatchNorm2D(planes)
        self.relu = nn.ReLU()

    def forward(self, x, residual=None):
        if residual is None:
            residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def bottleneck_x(inplanes, planes, stride=1, cardinality=32):
    """The official BottleneckX: grouped 3x3 with ``planes * cardinality // 32`` channels."""
    return Bottleneck(inplanes, planes, stride, width=planes * cardinality // 32,
                      groups=cardinality)


class Root(nn.Layer):
    """Aggregation node: conv over the concatenated children -> BN (-> + first child) -> ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size=1, residual=False):
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel_size)
        self.bn = nn.BatchNorm2D(out_channels)
        self.relu = nn.ReLU()
        self.residual = residual

    def forward(self, *xs):
        out = self.bn(self.conv(paddle.concat(list(xs), axis=1)))
        if self.residual:
            out = out + xs[0]
        return self.relu(out)


class Tree(nn.Layer):
    """Hierarchical deep aggregation tree.

    ``levels == 1``: two blocks (``tree1``, ``tree2``) aggregated by ``root`` together with the
    children passed down by the enclosing trees. ``levels > 1``: ``tree1`` and ``tree2`` are
    trees of ``levels - 1``; ``tree2`` receives ``tree1``'s output as an extra child, so only the
    innermost last tree has a root. ``level_root`` adds the (downsampled) input as a child.
    ``make_block(in, out, stride)`` builds one block.
    """

    def __init__(self, levels, make_block, in_channels, out_channels, stride=1,
                 level_root=False, root_dim=0, root_kernel_size=1, root_residual=False):
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        if levels == 1:
            self.tree1 = make_block(in_channels, out_channels, stride)
            self.tree2 = make_block(out_channels, out_channels, 1)
            self.root = Root(root_dim, out_channels, root_kernel_size, root_residual)
        else:
            self.tree1 = Tree(levels - 1, make_block, in_channels, out_channels, stride,
                              root_dim=0, root_kernel_size=root_kernel_size,
                              root_residual=root_residual)
            self.tree2 = Tree(levels - 1, make_block, out_channels, out_channels,
                              root_dim=root_dim + out_channels,
                              root_kernel_size=root_kernel_size, root_residual=root_residual)
        self.levels = levels
        self.level_root = level_root
        self.root_dim = root_dim
        self.downsample = nn.MaxPool2D(stride, stride) if stride > 1 else None
        # The official code also builds this projection when levels > 1, where its output
        # is discarded (the sub-tree computes its own): only the live one is built here.
        self.project = None
        if in_channels != out_channels and levels == 1:
            self.project = _conv_bn(in_channels, out_channels, 1)

    def forward(self, x, children=None):
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            residual = self.project(bottom) if self.project is not None else bottom
            x1 = self.tree1(x, residual)
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


# name: (levels, channels, block, residual_root, cardinality)
DLA_CONFIGS = {
    "DLA34": ([1, 1, 1, 2, 2, 1], [16, 32, 64, 128, 256, 512], "basic", False, None),
    "DLA46_c": ([1, 1, 1, 2, 2, 1], [16, 32, 64, 64, 128, 256], "bottleneck", False, None),
    "DLA46x_c": ([1, 1, 1, 2, 2, 1], [16, 32, 64, 64, 128, 256], "bottleneck_x", False, 32),
    "DLA60x_c": ([1, 1, 1, 2, 3, 1], [16, 32, 64, 64, 128, 256], "bottleneck_x", False, 32),
    "DLA60": ([1, 1, 1, 2, 3, 1], [16, 32, 128, 256, 512, 1024], "bottleneck", False, None),
    "DLA60x": ([1, 1, 1, 2, 3, 1], [16, 32, 128, 256, 512, 1024], "bottleneck_x", False, 32),
    "DLA102": ([1, 1, 1, 3, 4, 1], [16, 32, 128, 256, 512, 1024], "bottleneck", True, None),
    "DLA102x": ([1, 1, 1, 3, 4, 1], [16, 32, 128, 256, 512, 1024], "bottleneck_x", True, 32),
    "DLA102x2": ([1, 1, 1, 3, 4, 1], [16, 32, 128, 256, 512, 1024], "bottleneck_x", True, 64),
    "DLA169": ([1, 1, 2, 3, 5, 1], [16, 32, 128, 256, 512, 1024], "bottleneck", True, None),
}


class DLA(nn.Layer):
    """Deep Layer Aggregation classifier.

    block: "basic" | "bottleneck" | "bottleneck_x" (with ``cardinality``, 32 by default).
    """

    def __init__(self, levels, channels, block="basic", cardinality=32, residual_root=False,
                 class_dim=1000, root_kernel_size=1):
        super().__init__()
        if len(levels) != 6 or len(channels) != 6:
            raise ValueError("DLA needs 6 levels and 6 channel counts")
        makers = {"basic": BasicBlock, "bottleneck": Bottleneck,
                  "bottleneck_x": partial(bottleneck_x, cardinality=cardinality)}
        if block not in makers:
            raise ValueError(f"unknown DLA block {block!r}; use one of {sorted(makers)}")
        make_block = makers[block]
        self.levels = list(levels)
        self.channels = list(channels)
        self.block = block
        self.cardinality = cardinality if block == "bottleneck_x" else None
        self.base_layer = _conv_bn(3, channels[0], 7, relu=True)
        self.level0 = self._make_conv_level(channels[0], channels[0], levels[0])
        self.level1 = self._make_conv_level(channels[0], channels[1], levels[1], stride=2)
        for i in range(2, 6):
            self.add_sublayer(f"level{i}", Tree(
                levels[i], make_block, channels[i - 1], channels[i], stride=2,
                level_root=i > 2, root_kernel_size=root_kernel_size,
                root_residual=residual_root))
        self.stage_channels = list(channels[2:])
        self.num_features = channels[-1]
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        # Official init everywhere (see _conv): convs N(0, sqrt(2/(k*k*out))), the
        # classifier included, its bias PyTorch's default; BN weight 1, bias 0 (Paddle's).
        self.fc = _conv(channels[-1], class_dim, 1, bias=True)

    @staticmethod
    def _make_conv_level(inplanes, planes, convs, stride=1):
        layers = []
        for i in range(convs):
            layers += [_conv(inplanes, planes, 3, stride if i == 0 else 1),
                       nn.BatchNorm2D(planes), nn.ReLU()]
            inplanes = planes
        return nn.Sequential(*layers)

    def stem(self, x):
        return self.level1(self.level0(self.base_layer(x)))

    def forward_stages(self, x):
        """Outputs of level2..level5: strides 4, 8, 16, 32, channels ``stage_channels``."""
        x = self.stem(x)
        feats = []
        for i in range(2, 6):
            x = getattr(self, f"level{i}")(x)
            feats.append(x)
        return feats

    def forward_features(self, x):
        x = self.stem(x)
        for i in range(2, 6):
            x = getattr(self, f"level{i}")(x)
        return x

    def forward_head(self, x):
        return paddle.flatten(self.fc(self.avgpool(x)), 1)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _build(name, class_dim, **kw):
    levels, channels, block, residual_root, cardinality = DLA_CONFIGS[name]
    args = dict(block=block, residual_root=residual_root, class_dim=class_dim)
    if cardinality is not None:
        args["cardinality"] = cardinality
    args.update(kw)
    return DLA(levels, channels, **args)


@register_model(family="DLA")
def DLA34(class_dim=1000, **kw):
    return _build("DLA34", class_dim, **kw)


@register_model(family="DLA")
def DLA46_c(class_dim=1000, **kw):
    return _build("DLA46_c", class_dim, **kw)


@register_model(family="DLA")
def DLA46x_c(class_dim=1000, **kw):
    return _build("DLA46x_c", class_dim, **kw)


@register_model(family="DLA")
def DLA60x_c(class_dim=1000, **kw):
    return _build("DLA60x_c", class_dim, **kw)


# 76.9 = 100 - 23.1, the paper's DLA-60 top-1 error (ARCHITECTURES.md recipes row); the other
# DLA variants have no published top-1 in the reference file.
@register_model(family="DLA", paper_top1=76.9)
def DLA60(class_dim=1000, **kw):
    return _build("DLA60", class_dim, **kw)


@register_model(family="DLA")
def DLA60x(class_dim=1000, **kw):
    return _build("DLA60x", class_dim, **kw)


@register_model(family="DLA")
def DLA102(class_dim=1000, **kw):
    return _build("DLA102", class_dim, **kw)


@register_model(family="DLA")
def DLA102x(class_dim=1000, **kw):
    return _build("DLA102x", class_dim, **kw)


@register_model(family="DLA")
def DLA102x2(class_dim=1000, **kw):
    return _build("DLA102x2", class_dim, **kw)


@register_model(family="DLA")
def DLA169(class_dim=1000, **kw):
    return _build("DLA169", class_dim, **kw)

"""ResNet and ResNeXt as torchvision builds them (the baselines of every paper here).

Layout and names follow torchvision (stride on the 3x3, ``downsample`` = 1x1 conv + BN), so
torchvision checkpoints convert by name. The blocks are written to be extended, not copied:

* ``attn=(name, layer)`` adds an attention layer (ECA, SE) after the last BN of the residual
  branch, registered under the official attribute name (``eca``, ``se``...).
* ``extra_in`` widens ``conv1``'s input (RLA feeds ``concat(x, hidden)`` into it).
* ``branch(x)`` and ``shortcut(x)`` are separate so a family can combine them differently
  (ED adds an encoder-decoder path on the shortcut, RLA threads a hidden state).
* ``ResNet.block_kwargs(stage, index)`` lets a subclass give each block its own options.

``attention`` ("none" | "se" | "eca") puts one of the official attention layers of layers.py in
every block of a plain ResNet/ResNeXt, where ECA-Net and ED-SE put them (after the last BN of
the residual branch, before the add), to compare attention modules on one backbone:

* ``se``: ``SELayer(C, reduction)`` (ED-SE's layer, SENet's reduction 16 by default), C = the
  block's output channels.
* ``eca``: ``ECA(k)`` with k from ECA-Net's adaptive rule on the block's output channels
  (``eca_kernel_size``: 3, 5, 5, 5 for ResNet18/34; 5, 5, 5, 7 for ResNet50-152, the kernels
  of RLA-Net's ECA models), or ``k_size`` per stage as the released ECA-ResNets fix them:
  ``ResNet18(attention="eca", k_size=[3, 5, 7, 7])`` is ``ECA_ResNet18()`` (same layers, names
  and initialisation; eca_resnet.py builds its models this way).

"none" (the default) builds exactly the torchvision model. Families that subclass ResNet with
their own ``block_kwargs`` (ED, RLA) have their own attention options and refuse this one.
"""
import math

import paddle
import paddle.nn as nn

from ..registry import register_model
from .layers import (ECA, SELayer, eca_kernel_size, init_eca_, kaiming_normal_fan_out_,
                     parse_k_size)

ATTENTIONS = ("none", "se", "eca")


def conv3x3(in_ch, out_ch, stride=1, groups=1):
    return nn.Conv2D(in_ch, out_ch, 3, stride=stride, padding=1, groups=groups, bias_attr=False)


def conv1x1(in_ch, out_ch, stride=1):
    return nn.Conv2D(in_ch, out_ch, 1, stride=stride, bias_attr=False)


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 attn=None, extra_in=0):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes + extra_in, planes, stride)
        self.bn1 = nn.BatchNorm2D(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2D(planes)
        self.attn_name = None
        if attn is not None:
            self.attn_name = attn[0]
            self.add_sublayer(attn[0], attn[1])
        self.downsample = downsample
        self.stride = stride

    def last_bn(self):
        return self.bn2

    def branch(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._attend(out)

    def _attend(self, out):
        return out if self.attn_name is None else getattr(self, self.attn_name)(out)

    def shortcut(self, x):
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x):
        return self.relu(self.branch(x) + self.shortcut(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 attn=None, extra_in=0, expansion=None):
        nn.Layer.__init__(self)
        if expansion is not None:
            self.expansion = expansion
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes + extra_in, width)
        self.bn1 = nn.BatchNorm2D(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2D(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2D(planes * self.expansion)
        self.relu = nn.ReLU()
        self.attn_name = None
        if attn is not None:
            self.attn_name = attn[0]
            self.add_sublayer(attn[0], attn[1])
        self.downsample = downsample
        self.stride = stride

    def last_bn(self):
        return self.bn3

    def branch(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._attend(out)


class ResNet(nn.Layer):
    """torchvision ResNet: 7x7/2 stem, 3x3/2 max pool, four stages, global pool, ``fc``."""
    attention = "none"          # for subclasses that build their layers without __init__ (RLA)

    def __init__(self, block, layers, class_dim=1000, groups=1, width_per_group=64,
                 zero_init_residual=False, stage_planes=(64, 128, 256, 512), attention="none",
                 k_size=None, reduction=16):
        super().__init__()
        self._set_attention(attention, k_size, reduction,
                            [p * block.expansion for p in stage_planes])
        self.block = block
        self.groups = groups
        self.base_width = width_per_group
        self._build_stem()
        self.stage_channels = []
        for i, (planes, blocks) in enumerate(zip(stage_planes, layers)):
            stage = self._make_layer(i, planes, blocks, stride=1 if i == 0 else 2)
            self.add_sublayer(f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.num_features = self.inplanes
        self.fc = self._make_fc(self.num_features, class_dim)
        self.init_weights(zero_init_residual)

    def _build_stem(self):
        """7x7/2 conv, BN, ReLU, 3x3/2 max pool (torchvision names conv1/bn1/relu/maxpool)."""
        self.inplanes = 64
        self.conv1 = nn.Conv2D(3, 64, 7, stride=2, padding=3, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

    @staticmethod
    def _make_fc(in_features, class_dim):
        # torch's default Linear init, uniform(+-1/sqrt(in)), which Paddle does not use.
        bound = 1.0 / math.sqrt(in_features)
        init = nn.initializer.Uniform(-bound, bound)
        return nn.Linear(in_features, class_dim,
                         weight_attr=paddle.ParamAttr(initializer=init),
                         bias_attr=paddle.ParamAttr(initializer=init))

    def _set_attention(self, attention, k_size, reduction, channels):
        """Check the attention options; the layers are built per block by ``block_kwargs``."""
        attention = "none" if attention is None else str(attention).lower()   # YAML null, None
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        if attention != "none" and type(self).block_kwargs is not ResNet.block_kwargs:
            raise ValueError(f"{type(self).__name__} builds its own blocks; 'attention' applies to "
                             f"the torchvision ResNet/ResNeXt models (ResNet18 ... ResNeXt101_32x8d)")
        if k_size is not None and attention != "eca":
            raise ValueError(f"k_size is the ECA kernel size per stage: set attention: eca "
                             f"(got attention: {attention})")
        if reduction != 16 and attention != "se":
            raise ValueError(f"reduction is SE's: set attention: se (got attention: {attention})")
        self.attention = attention
        self.attention_channels = list(channels)
        if attention == "eca":
            if k_size is None:
                self.k_size = [eca_kernel_size(c) for c in channels]
            else:
                self.k_size = parse_k_size(k_size, len(channels))
        elif attention == "se":
            if int(reduction) < 1 or min(channels) // int(reduction) < 1:
                raise ValueError(f"reduction must be between 1 and {min(channels)}, got {reduction}")
            self.reduction = int(reduction)

    def block_kwargs(self, stage, index):
        """Per-block extra constructor options: the attention layer, if any; subclasses
        override (ED's widths, RLA's hidden state...)."""
        if self.attention == "eca":
            return {"attn": ("eca", ECA(k_size=self.k_size[stage]))}
        if self.attention == "se":
            return {"attn": ("se", SELayer(self.attention_channels[stage], self.reduction))}
        return {}

    def _make_layer(self, stage, planes, blocks, stride):
        block = self.block
        expansion = self.block_kwargs(stage, 0).get("expansion") or block.expansion
        downsample = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * expansion, stride),
                                       nn.BatchNorm2D(planes * expansion))
        kw = dict(groups=self.groups, base_width=self.base_width)
        layers = [block(self.inplanes, planes, stride, downsample, **kw,
                        **self.block_kwargs(stage, 0))]
        self.inplanes = planes * expansion
        for i in range(1, blocks):
            layers.append(block(self.inplanes, planes, **kw, **self.block_kwargs(stage, i)))
        self.stage_channels.append(self.inplanes)
        return nn.Sequential(*layers)

    def init_weights(self, zero_init_residual=False):
        kaiming_normal_fan_out_(self)
        if zero_init_residual:
            for m in self.sublayers():
                if isinstance(m, BasicBlock):
                    bn = m.last_bn()
                    bn.weight.set_value(paddle.zeros_like(bn.weight))
        if self.attention == "eca":
            init_eca_(self)

    def stem(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x):
        """Feature maps at strides 4, 8, 16, 32 (channels in ``stage_channels``)."""
        x = self.stem(x)
        feats = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            feats.append(x)
        return feats

    def forward_features(self, x):
        return self.forward_stages(x)[-1]

    def forward_head(self, x):
        return self.fc(paddle.flatten(self.avgpool(x), 1))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@register_model
def ResNet18(class_dim=1000, **kw):
    return ResNet(BasicBlock, [2, 2, 2, 2], class_dim=class_dim, **kw)


@register_model
def ResNet34(class_dim=1000, **kw):
    return ResNet(BasicBlock, [3, 4, 6, 3], class_dim=class_dim, **kw)


@register_model
def ResNet50(class_dim=1000, **kw):
    return ResNet(Bottleneck, [3, 4, 6, 3], class_dim=class_dim, **kw)


@register_model
def ResNet101(class_dim=1000, **kw):
    return ResNet(Bottleneck, [3, 4, 23, 3], class_dim=class_dim, **kw)


@register_model
def ResNet152(class_dim=1000, **kw):
    return ResNet(Bottleneck, [3, 8, 36, 3], class_dim=class_dim, **kw)


@register_model
def ResNeXt50_32x4d(class_dim=1000, **kw):
    return ResNet(Bottleneck, [3, 4, 6, 3], class_dim=class_dim, groups=32, width_per_group=4, **kw)


@register_model
def ResNeXt101_32x8d(class_dim=1000, **kw):
    return ResNet(Bottleneck, [3, 4, 23, 3], class_dim=class_dim, groups=32, width_per_group=8, **kw)

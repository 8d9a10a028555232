"""RLA-Net: recurrent layer aggregation (Zhao et al., NeurIPS 2021), as the official
fangyanwen1106/RLANet code builds it (models/resnet_rla.py, models/mobilenetv2_dsrla.py,
models/mobilenetv2_rla.py).

A small hidden state ``h`` (``rla_channel`` = 32 maps) runs alongside the backbone. Every block
sees ``concat(x, h)``; after it, ``h = recurrent_conv(tanh(BN_i(h + conv_out(y))))``, where
``conv_out`` (1x1, block channels -> 32) and ``recurrent_conv`` (3x3, 32 -> 32) are shared by the
blocks of a stage and ``BN_i`` belongs to the block. ``h`` is average-pooled 2x2 where the backbone
strides. The head classifies ``concat(x, ReLU(BN(h)))``.

Names mirror the official modules (``stages.i.j``, ``stage_bns.i.j``, ``conv_outs.i``,
``recurrent_convs.i`` / ``recurrent_dsconvs.0``, ``bn2``, ``fc`` / ``classifier.1``), so official
checkpoints convert by name. Faithful quirks:

* ResNet: the official block returns ``y`` = the bottleneck *output* (after the residual add and
  ReLU), not the branch before the add: it keeps ``y = out`` and then runs ``out += identity``
  and ``ReLU(inplace=True)``, which modify that very tensor. The parity fixtures confirm it, so
  ``conv_out`` reads the block output here too.
* MobileNetV2: the official model lists one recurrent conv object once per "new cell" in a
  ModuleList (five times); it is one tensor, held here once as ``recurrent_dsconvs.0`` (the
  converter drops the aliases). ECA there uses k = 1 below 96 output channels, else 3.
* ``h`` starts as zeros shaped from the stem output (56x56 at 224, official), so any input size
  works; the 2x2 pooling uses ceil mode so odd maps (where the official code would fail on the
  concat) follow the backbone's ceil(H/2) grid; even maps are pooled exactly as the official
  AvgPool2d(2, 2).
"""
import math

import paddle
import paddle.nn as nn

from ..registry import register_model
from .layers import ECA, conv_bn_act, kaiming_normal_fan_out_
from .resnet import Bottleneck, ResNet, conv1x1, conv3x3

FAMILY = "RLA-Net"


def _hidden_zeros(x, channels):
    return paddle.zeros([x.shape[0], channels, x.shape[2], x.shape[3]], dtype=x.dtype)


def _hidden_pool():
    # AvgPool2d((2, 2), stride=(2, 2)) of the official code; ceil mode only matters for odd maps.
    return nn.AvgPool2D(2, stride=2, ceil_mode=True)


def _torch_default_conv1d_init_(layer):
    """torch's default Conv1d init (kaiming_uniform, a=sqrt(5)) = uniform(+-1/sqrt(fan_in)),
    which the official ECA layers keep (they are not re-initialised by the model)."""
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, nn.Conv1D):
            w = sub.weight
            bound = 1.0 / math.sqrt(w.shape[1] * w.shape[2])
            w.set_value(paddle.uniform(w.shape, w.dtype, -bound, bound))


# ----------------------------------------------------------------------------- ResNet
class RLA_ResNet(ResNet):
    """RLA on the torchvision ResNet: the baseline ``Bottleneck`` with ``conv1`` widened by
    ``rla_channel`` (``extra_in``) and, for the ECA variants, ``attn=("eca", ECA(k))``."""

    def __init__(self, layers, class_dim=1000, rla_channel=32, eca_k_size=None,
                 zero_init_last_bn=True):
        nn.Layer.__init__(self)
        if eca_k_size is not None and len(eca_k_size) != 4:
            raise ValueError(f"eca_k_size needs one kernel size per stage, got {eca_k_size}")
        self.rla_channel = rla_channel
        self.eca_k_size = list(eca_k_size) if eca_k_size is not None else None
        self.block = Bottleneck
        self.groups = 1
        self.base_width = 64
        self._build_stem()

        self.stage_channels = []
        stages, stage_bns, conv_outs, recurrent_convs = [], [], [], []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stages.append(self._make_layer(i, planes, blocks, stride=1 if i == 0 else 2))
            stage_bns.append(nn.LayerList([nn.BatchNorm2D(rla_channel) for _ in range(blocks)]))
            conv_outs.append(conv1x1(self.inplanes, rla_channel))
            recurrent_convs.append(conv3x3(rla_channel, rla_channel))
        self.conv_outs = nn.LayerList(conv_outs)
        self.recurrent_convs = nn.LayerList(recurrent_convs)
        self.stages = nn.LayerList(stages)      # Sequentials used as lists: keys stages.i.j.*
        self.stage_bns = nn.LayerList(stage_bns)
        self.tanh = nn.Tanh()
        self.pool_h = _hidden_pool()
        self.bn2 = nn.BatchNorm2D(rla_channel)
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.num_features = self.inplanes + rla_channel
        self.fc = self._make_fc(self.num_features, class_dim)
        # kaiming fan_out convs, BN 1/0, last BN of every bottleneck zeroed (official default).
        self.init_weights(zero_init_residual=zero_init_last_bn)
        _torch_default_conv1d_init_(self)

    def block_kwargs(self, stage, index):
        kw = {"extra_in": self.rla_channel}
        if self.eca_k_size is not None:
            kw["attn"] = ("eca", ECA(k_size=int(self.eca_k_size[stage])))
        return kw

    def _run(self, x):
        """Stem and the four stages; returns (per-stage outputs, final hidden state)."""
        x = self.stem(x)
        h = _hidden_zeros(x, self.rla_channel)
        feats = []
        for blocks, bns, conv_out, recurrent_conv in zip(self.stages, self.stage_bns,
                                                         self.conv_outs, self.recurrent_convs):
            for block, bn in zip(blocks, bns):
                y = block.branch(paddle.concat([x, h], axis=1))
                x = self.relu(y + block.shortcut(x))
                if block.stride != 1:
                    h = self.pool_h(h)
                # official quirk: the RLA update reads the block output (see module docstring)
                h = recurrent_conv(self.tanh(bn(h + conv_out(x))))
            feats.append(x)
        return feats, h

    def forward_stages(self, x):
        """Backbone maps at strides 4, 8, 16, 32 (``stage_channels``), as the official
        detection backbone returns them (without the hidden state)."""
        return self._run(x)[0]

    def forward_features(self, x):
        feats, h = self._run(x)
        return paddle.concat([feats[-1], self.relu(self.bn2(h))], axis=1)


def _rla_resnet(layers, class_dim, rla_channel, eca_k_size=None, **kw):
    return RLA_ResNet(layers, class_dim=class_dim, rla_channel=rla_channel,
                      eca_k_size=eca_k_size, **kw)


_ECA_K = (5, 5, 5, 7)


@register_model(paper_top1=77.17, family=FAMILY)
def RLA_ResNet50(class_dim=1000, rla_channel=32, **kw):
    return _rla_resnet([3, 4, 6, 3], class_dim, rla_channel, **kw)


@register_model(paper_top1=78.52, family=FAMILY)
def RLA_ResNet101(class_dim=1000, rla_channel=32, **kw):
    return _rla_resnet([3, 4, 23, 3], class_dim, rla_channel, **kw)


@register_model(family=FAMILY)
def RLA_ResNet152(class_dim=1000, rla_channel=32, **kw):
    return _rla_resnet([3, 8, 36, 3], class_dim, rla_channel, **kw)


@register_model(paper_top1=77.85, family=FAMILY)
def RLA_ECA_ResNet50(class_dim=1000, rla_channel=32, k_size=_ECA_K, **kw):
    return _rla_resnet([3, 4, 6, 3], class_dim, rla_channel, k_size, **kw)


@register_model(paper_top1=79.00, family=FAMILY)
def RLA_ECA_ResNet101(class_dim=1000, rla_channel=32, k_size=_ECA_K, **kw):
    return _rla_resnet([3, 4, 23, 3], class_dim, rla_channel, k_size, **kw)


@register_model(family=FAMILY)
def RLA_ECA_ResNet152(class_dim=1000, rla_channel=32, k_size=_ECA_K, **kw):
    return _rla_resnet([3, 8, 36, 3], class_dim, rla_channel, k_size, **kw)


# ----------------------------------------------------------------------------- MobileNetV2
class RLAInvertedResidual(nn.Layer):
    """The RLA-MobileNetV2 cell: [1x1 expansion of x] -> concat(x_exp, h) -> depthwise 3x3 over
    hidden + rla_channel maps -> 1x1 projection -> BN [-> ECA] = y; out = y (+ x if residual).
    Official names: ``conv1x1`` (ConvBNReLU6, absent when t = 1) and ``conv`` (dw ConvBNReLU6,
    projection conv, BN, [eca] as children 0..3)."""

    def __init__(self, inp, oup, stride, expand_ratio, rla_channel, eca_k_size=None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        hidden_rla = hidden + rla_channel
        self.use_res_connect = stride == 1 and inp == oup
        self.conv1x1 = None
        if expand_ratio != 1:
            self.conv1x1 = conv_bn_act(inp, hidden, 1, act=nn.ReLU6)
        cell = [conv_bn_act(hidden_rla, hidden_rla, 3, stride=stride, groups=hidden_rla,
                            act=nn.ReLU6),
                nn.Conv2D(hidden_rla, oup, 1, bias_attr=False),
                nn.BatchNorm2D(oup)]
        if eca_k_size is not None:
            cell.append(ECA(k_size=eca_k_size))
        self.conv = nn.Sequential(*cell)

    def forward(self, x, h):
        """Returns (block output, y for the RLA update)."""
        e = x if self.conv1x1 is None else self.conv1x1(x)
        y = self.conv(paddle.concat([e, h], axis=1))
        return (x + y if self.use_res_connect else y), y


class RLA_MobileNetV2Net(nn.Layer):
    """torchvision MobileNetV2 settings with RLA. ``depthwise_recurrent`` selects the published
    dsRLA model (``recurrent_dsconvs``, depthwise 3x3) or the full-conv variant
    (``recurrent_convs``); either way ONE recurrent conv serves every cell."""

    SETTINGS = [  # t, c, n, s
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
        [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
    FEATURE_STAGES = (1, 2, 4)      # stages ending at strides 4, 8, 16; 32 is the conv2 head

    def __init__(self, class_dim=1000, rla_channel=32, eca=False, depthwise_recurrent=True,
                 dropout=0.2):
        super().__init__()
        self.rla_channel = rla_channel
        input_channel, last_channel = 32, 1280
        self.conv1 = conv_bn_act(3, input_channel, 3, stride=2, act=nn.ReLU6)
        stages, stage_bns, conv_outs = [], [], []
        for t, c, n, s in self.SETTINGS:
            cells = []
            for i in range(n):
                k = (1 if c < 96 else 3) if eca else None
                cells.append(RLAInvertedResidual(input_channel, c, s if i == 0 else 1, t,
                                                 rla_channel, eca_k_size=k))
                input_channel = c
            stages.append(nn.LayerList(cells))
            stage_bns.append(nn.LayerList([nn.BatchNorm2D(rla_channel) for _ in range(n)]))
            conv_outs.append(nn.Conv2D(c, rla_channel, 1, bias_attr=False))
        self.stages = nn.LayerList(stages)
        self.conv_outs = nn.LayerList(conv_outs)
        groups = rla_channel if depthwise_recurrent else 1
        recurrent = nn.Conv2D(rla_channel, rla_channel, 3, padding=1, groups=groups,
                              bias_attr=False)
        self.recurrent_name = "recurrent_dsconvs" if depthwise_recurrent else "recurrent_convs"
        # one entry: the official list repeats this very module per new cell (aliases)
        setattr(self, self.recurrent_name, nn.LayerList([recurrent]))
        self.stage_bns = nn.LayerList(stage_bns)
        self.stage_channels = [self.SETTINGS[i][1] for i in self.FEATURE_STAGES] + [last_channel]
        self.conv2 = conv_bn_act(input_channel + rla_channel, last_channel, 1, act=nn.ReLU6)
        self.bn2 = nn.BatchNorm2D(rla_channel)
        self.relu = nn.ReLU6()
        self.tanh = nn.Tanh()
        self.pool_h = _hidden_pool()
        self.num_features = last_channel
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channel, class_dim))
        self.init_weights()

    def init_weights(self):
        kaiming_normal_fan_out_(self)   # official: kaiming_normal_(fan_out), BN 1/0
        fc = self.classifier[1]
        fc.weight.set_value(paddle.normal(0.0, 0.01, fc.weight.shape))
        fc.bias.set_value(paddle.zeros_like(fc.bias))
        _torch_default_conv1d_init_(self)

    def _run(self, x):
        x = self.conv1(x)
        h = _hidden_zeros(x, self.rla_channel)
        recurrent = getattr(self, self.recurrent_name)[0]
        feats = []
        for cells, bns, conv_out in zip(self.stages, self.stage_bns, self.conv_outs):
            for cell, bn in zip(cells, bns):
                x, y = cell(x, h)
                if cell.stride != 1:
                    h = self.pool_h(h)
                h = recurrent(self.tanh(bn(h + conv_out(y))))
            feats.append(x)
        return feats, h

    def _head_conv(self, x, h):
        return self.conv2(paddle.concat([x, self.relu(self.bn2(h))], axis=1))

    def forward_stages(self, x):
        """Maps at strides 4, 8, 16, 32: the ends of setting rows 2, 3 and 5 (24, 32, 96
        channels) and, as the baseline MobileNetV2 does, the 1280-channel head conv (here over
        concat(x, h)) = ``forward_features``."""
        feats, h = self._run(x)
        return [feats[i] for i in self.FEATURE_STAGES] + [self._head_conv(feats[-1], h)]

    def forward_features(self, x):
        feats, h = self._run(x)
        return self._head_conv(feats[-1], h)

    def forward_head(self, x):
        return self.classifier(paddle.flatten(self.avgpool(x), 1))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@register_model(paper_top1=72.38, family=FAMILY)
def RLA_MobileNetV2(class_dim=1000, rla_channel=32, **kw):
    """Official ``dsrla_mobilenetv2_k32`` (depthwise recurrent conv), the published model."""
    return RLA_MobileNetV2Net(class_dim, rla_channel, eca=False, **kw)


@register_model(paper_top1=72.93, family=FAMILY)
def RLA_ECA_MobileNetV2(class_dim=1000, rla_channel=32, **kw):
    """Official ``dsrla_mobilenetv2_k32_eca``."""
    return RLA_MobileNetV2Net(class_dim, rla_channel, eca=True, **kw)


@register_model(family=FAMILY)
def RLA_MobileNetV2_FullConv(class_dim=1000, rla_channel=32, **kw):
    """Official ``rla_mobilenetv2_k32``: full 3x3 recurrent conv (not a published result)."""
    return RLA_MobileNetV2Net(class_dim, rla_channel, eca=False, depthwise_recurrent=False, **kw)

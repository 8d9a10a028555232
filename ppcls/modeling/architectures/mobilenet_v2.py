"""MobileNetV2 as torchvision builds it (the baseline of the ECA and RLA papers).

Names follow torchvision, so its checkpoints convert by name:
``features.0`` (3x3/2 stem ConvBNReLU6), ``features.1..17`` (InvertedResidual, each with one
``conv`` Sequential), ``features.18`` (1x1 ConvBNReLU6 to ``last_channel``),
``classifier`` = Sequential(Dropout, Linear). A ConvBNReLU6 is a Sequential(Conv2D, BN, ReLU6)
with children 0/1/2 (``layers.conv_bn_act``).

Written to be extended, not copied (ECA-MobileNetV2 in eca_resnet.py, RLA-MobileNetV2):

* ``InvertedResidual(inp, oup, stride, expand_ratio, attn=None)``: ``attn`` (a Layer, e.g.
  ``layers.ECA``) is appended as the last child of ``conv``, after the projection BN and before
  the residual add, which is where and how the official ECA code names it (``conv.4`` / ``conv.3``).
* ``dw_project_layers(hidden, oup, stride, attn)``: the depthwise ConvBNReLU6 -> 1x1 projection
  -> BN [-> attn] tail of ``conv``, for blocks that build their expansion elsewhere (RLA).
* ``block_specs(setting, input_channel, scale)``: one ``BlockSpec`` per inverted residual
  (stage = row of the setting table, index in the row, in/out channels, stride, expansion,
  the row's unscaled channel count ``c``).
* ``MobileNetV2Net`` hooks: ``scale_channels(channels, multiplier)`` (used for the stem (32, w),
  every block (c, w) and the head (1280, max(1, w)); torchvision rounds to a multiple of
  ``round_nearest``, official ECA truncates with ``int``), ``block_kwargs(spec)`` (extra
  constructor options per block, e.g. ``attn``; a subclass sets what it reads *before*
  ``super().__init__``), ``init_weights()`` (torchvision's: Conv2D, BN and Linear only; a
  subclass initialises its own extra layers after calling it, e.g. ``eca_resnet.init_eca_``),
  and the ``block`` constructor argument, called as
  ``block(spec.inp, spec.oup, spec.stride, spec.expand_ratio, **block_kwargs(spec))``.
* ``forward_stages``: ``features[i]`` for i in ``stage_indices`` (computed from the strides:
  last feature at strides 4, 8, 16, then the final 1x1 conv), i.e. 3, 6, 13, 18 with
  ``stage_channels`` 24, 32, 96, 1280 at width 1.0.
"""
import collections

import paddle
import paddle.nn as nn

from ..registry import register_model
from .layers import conv_bn_act, kaiming_normal_fan_out_, make_divisible

# t (expansion), c (output channels at width 1.0), n (blocks), s (stride of the first block)
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

BlockSpec = collections.namedtuple(
    "BlockSpec", "stage index inp oup stride expand_ratio base_channels")
BlockSpec.__doc__ = ("One inverted residual: ``stage`` = row of the setting table, ``index`` in "
                     "that row, ``base_channels`` = the row's unscaled ``c``.")


def conv_bn_relu6(in_ch, out_ch, kernel_size=3, stride=1, groups=1):
    """torchvision's ConvBNReLU: Sequential(Conv2D no bias, BN, ReLU6), children 0/1/2."""
    return conv_bn_act(in_ch, out_ch, kernel_size, stride=stride, groups=groups, act=nn.ReLU6)


def dw_project_layers(hidden, oup, stride, attn=None):
    """Depthwise 3x3 ConvBNReLU6 (stride) -> 1x1 linear projection -> BN [-> attn], as a list."""
    layers = [conv_bn_relu6(hidden, hidden, 3, stride=stride, groups=hidden),
              nn.Conv2D(hidden, oup, 1, bias_attr=False),
              nn.BatchNorm2D(oup)]
    if attn is not None:
        layers.append(attn)
    return layers


class InvertedResidual(nn.Layer):
    """``conv`` = [1x1 expand ConvBNReLU6 (when t != 1)] + dw_project_layers(...); identity
    shortcut when stride 1 and inp == oup."""

    def __init__(self, inp, oup, stride, expand_ratio, attn=None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        self.in_channels = inp
        self.out_channels = oup
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(inp, hidden, 1))
        layers += dw_project_layers(hidden, oup, stride, attn)
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res_connect else y


def block_specs(setting, input_channel, scale):
    """Walk the (t, c, n, s) table: yield a BlockSpec per block; ``scale(c)`` gives its width."""
    inp = input_channel
    for stage, (t, c, n, s) in enumerate(setting):
        oup = scale(c)
        for i in range(n):
            yield BlockSpec(stage, i, inp, oup, s if i == 0 else 1, t, c)
            inp = oup


def _check_setting(setting):
    setting = [list(row) for row in setting]
    if not setting or any(len(row) != 4 for row in setting):
        raise ValueError(f"inverted_residual_setting must be a non-empty list of [t, c, n, s] "
                         f"rows, got {setting}")
    return setting


class MobileNetV2Net(nn.Layer):
    """torchvision MobileNetV2 (``torchvision.models.mobilenet_v2``).

    ``forward_stages`` returns the outputs of ``features[i]`` for i in ``stage_indices``: the last
    feature at strides 4, 8 and 16 and the final 1x1 conv at stride 32. At width 1.0 that is
    features 3, 6, 13, 18 with 24, 32, 96, 1280 channels (``stage_channels``).
    """

    STEM_CHANNELS = 32
    LAST_CHANNELS = 1280

    def __init__(self, class_dim=1000, width_mult=1.0, inverted_residual_setting=None,
                 round_nearest=8, dropout=0.2, block=InvertedResidual):
        super().__init__()
        self.width_mult = width_mult
        self.round_nearest = round_nearest
        setting = _check_setting(inverted_residual_setting or INVERTED_RESIDUAL_SETTING)
        self.setting = setting
        input_channel = self.scale_channels(self.STEM_CHANNELS, width_mult)
        self.last_channel = self.scale_channels(self.LAST_CHANNELS, max(1.0, width_mult))

        features = [conv_bn_relu6(3, input_channel, stride=2)]
        strides, channels = [2], [input_channel]
        for spec in block_specs(setting, input_channel,
                                lambda c: self.scale_channels(c, width_mult)):
            features.append(block(spec.inp, spec.oup, spec.stride, spec.expand_ratio,
                                  **self.block_kwargs(spec)))
            strides.append(strides[-1] * spec.stride)
            channels.append(spec.oup)
            input_channel = spec.oup
        features.append(conv_bn_relu6(input_channel, self.last_channel, 1))
        strides.append(strides[-1])
        channels.append(self.last_channel)
        self.features = nn.Sequential(*features)

        self.stage_indices = self._stage_indices(strides)
        self.stage_channels = ([channels[i] for i in self.stage_indices]
                               if self.stage_indices else [])
        self.num_features = self.last_channel
        self.classifier = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(self.last_channel, class_dim))
        self.init_weights()

    # ---- hooks for subclasses -------------------------------------------------------------
    def scale_channels(self, channels, multiplier):
        """torchvision: round ``channels * multiplier`` to a multiple of ``round_nearest``."""
        return make_divisible(channels * multiplier, self.round_nearest)

    def block_kwargs(self, spec):
        """Extra constructor options for the block described by ``spec`` (a BlockSpec)."""
        return {}

    def init_weights(self):
        """torchvision: conv kaiming normal fan_out (bias 0), BN 1/0, Linear N(0, 0.01)/0."""
        kaiming_normal_fan_out_(self)
        for m in self.sublayers():
            if isinstance(m, nn.Conv2D) and m.bias is not None:
                m.bias.set_value(paddle.zeros_like(m.bias))
            elif isinstance(m, nn.Linear):
                m.weight.set_value(paddle.normal(0.0, 0.01, m.weight.shape).astype(m.weight.dtype))
                m.bias.set_value(paddle.zeros_like(m.bias))

    # ---- forward ------------------------------------------------------------------------------
    @staticmethod
    def _stage_indices(strides):
        """Last feature index at strides 4, 8, 16 and the last feature (stride 32)."""
        if strides[-1] != 32:
            return None
        out = []
        for target in (4, 8, 16):
            hits = [i for i, s in enumerate(strides) if s == target]
            if not hits:
                return None
            out.append(hits[-1])
        out.append(len(strides) - 1)
        return out

    def forward_stages(self, x):
        """Feature maps at strides 4, 8, 16, 32 (``features[i]``, i in ``stage_indices``)."""
        if not self.stage_indices:
            raise ValueError("this inverted_residual_setting has no strides 4/8/16/32 stages")
        feats = []
        wanted = set(self.stage_indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                feats.append(x)
        return feats

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x):
        return self.classifier(x.mean(axis=[2, 3]))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@register_model(family="MobileNetV2")
def MobileNetV2(class_dim=1000, **kw):
    """torchvision ``mobilenet_v2()``; kw: width_mult, round_nearest, dropout,
    inverted_residual_setting."""
    return MobileNetV2Net(class_dim=class_dim, **kw)

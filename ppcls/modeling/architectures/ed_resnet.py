"""ED-Net: a lightweight encoder-decoder (ED) path for deep residual networks.

Ported from megvii-research/ED-Net (``ed_resnet.py``, ``ed_resnext.py``, ``ed_se_resnet.py``,
``ed_se_resnext.py``). Every bottleneck of a torchvision-style ResNet/ResNeXt gets an extra path
on its (projected) shortcut::

    proj = shortcut(x)                                   # identity or 1x1 conv + BN
    ed   = BN(ConvT3x3/2(ReLU(BN(Conv3x3/2(proj)))))     # "encoder" / "decoder", groups 32
    out  = ReLU(F(x) + proj + ed)

The encoder halves the resolution and the channels go ``out -> planes -> out`` (``4p -> p -> 4p``
in ResNets, ``2p -> p -> 2p`` in the ResNeXts, whose ``planes`` are ``C * d * 2^stage`` with
expansion 2 as in the official code). No biases, no ReLU after the decoder. The official forward
evaluates ``shortcut(x)`` twice (once for the ED path, once for the sum) - the same value, so it
is computed once here.

Block code is not duplicated: :class:`EDBottleneck` is resnet.py's ``Bottleneck`` (torchvision
names ``conv1``/``bn1``..., ``downsample``) plus the ``encoder``/``decoder`` Sequentials named
as in the official code (``encoder.encoder_conv``, ``encoder.encoder_bn``, ``decoder.decoder_conv``,
``decoder.decoder_bn``); the SE variants use resnet.py's ``attn`` hook with layers.py's ``SELayer`` (the official
Linear names ``fc_reduction``, ``fc_extention`` [sic]; ResNet's ``attention: se`` reuses it). ppcls/convert/ed.py maps the official
checkpoint names (``layer1.layer1_block_0.conv_conv1``, ``shortcut.shortcut_conv``...) onto these.

Input sizes. The decoder is a 3x3 stride-2 transposed conv with padding 1 and output_padding 1
(0 in the last stage); on an ``h``-sized map the encoder gives ``ceil(h / 2)`` and the decoder
``2 * ceil(h / 2) - 1 + output_padding``, which is ``h`` only when the stage-1..3 maps (strides
4, 8, 16) are even and the stage-4 map (stride 32, "stage 5" / conv5 in the paper) is odd. With
the stride-4 map ``ceil(s / 4)`` this means ``ceil(s / 4) = 8 * odd``, i.e. every input side
``s`` with ``s % 64`` in {29, 30, 31, 32}: 32, 96, 160, 224, 288, 352, 416 ... (the stride-32 map
is then 1, 3, 5, 7, 9 ...). Other sizes (64, 128, 256, 320 ...) raise a ``ValueError`` naming the
size and the rule. Pooling is global, so every valid size works (the official model hard-codes
AvgPool2d(7) in the head and AvgPool2d(56/28/14/7) in SE, i.e. 224 only).

-A / -B efficient variants (described in the paper, never released): the transformation branch
is narrowed (``conv1`` out = 3x3 in/out = ``conv3`` in), the ED path and the block outputs are
unchanged. -B is the paper's "half of the 3x3 filters" and -A "keeps the baseline FLOPs"; the
published GFLOPs fix the width: each variant has a ratio ``r`` (two decimals) and stage ``i``'s
width is ``r * official width`` rounded to a multiple of 8 (ResNet) or of the 32 groups (ResNeXt,
an integer width per group). See docs/ED_efficient_variants.md for the search and the figures.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import register_model
from .layers import SELayer, torch_linear as _torch_linear
from .resnet import Bottleneck, ResNet

__all__ = ["EDBottleneck", "EDResNet", "SELayer", "ed_input_size_ok", "ed_stage_widths"]

ED_GROUPS = 32
FAMILY = "ED-Net"


def _size_rule_message(what):
    return (f"ED-Net needs inputs whose stage-5 (stride-32) map is odd-sized and whose stride-4/8/16 "
            f"maps are even-sized (the ED decoders are 3x3 stride-2 transposed convs with "
            f"output_padding 1, and 0 in the last stage); got {what}. Valid sides s have s % 64 in "
            f"{{29, 30, 31, 32}}: 32, 96, 160, 224, 288, 352 ... (224 works)")


def ed_input_size_ok(size):
    """True when an input side of ``size`` pixels keeps every ED encoder/decoder pair
    shape-consistent: ceil(size / 4) must be 8 times an odd number."""
    h1 = -(-int(size) // 4)
    return h1 % 16 == 8


class EDBottleneck(Bottleneck):
    """resnet.py's ``Bottleneck`` plus the ED path on the shortcut.

    ``ed_channels``: the encoder's output channels (the official ``out_channels``, i.e.
    ``planes``; independent of the branch width, so -A/-B keep the full ED path).
    ``last_stage``: the decoder's output_padding is 0 there (7 -> 4 -> 7 at 224), 1 elsewhere.
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 attn=None, extra_in=0, expansion=None, ed_channels=None, last_stage=False):
        super().__init__(inplanes, planes, stride, downsample, groups=groups, base_width=base_width,
                         attn=attn, extra_in=extra_in, expansion=expansion)
        out = planes * self.expansion
        mid = ed_channels or planes
        self.encoder = nn.Sequential(
            ("encoder_conv", nn.Conv2D(out, mid, 3, stride=2, padding=1, groups=ED_GROUPS,
                                       bias_attr=False)),
            ("encoder_bn", nn.BatchNorm2D(mid)))
        self.decoder = nn.Sequential(
            ("decoder_conv", nn.Conv2DTranspose(mid, out, 3, stride=2, padding=1,
                                                output_padding=0 if last_stage else 1,
                                                groups=ED_GROUPS, bias_attr=False)),
            ("decoder_bn", nn.BatchNorm2D(out)))

    def ed_path(self, proj):
        out = self.decoder(F.relu(self.encoder(proj)))
        # Shapes are only concrete in dygraph; an exported (static) model skips the check.
        if paddle.in_dynamic_mode() and out.shape[2:] != proj.shape[2:]:
            raise ValueError(_size_rule_message(
                f"a {proj.shape[2]}x{proj.shape[3]} map in an ED block, which the decoder "
                f"turns into {out.shape[2]}x{out.shape[3]}"))
        return out

    def forward(self, x):
        proj = self.shortcut(x)          # once; the official forward recomputes it for the sum
        return self.relu(self.branch(x) + proj + self.ed_path(proj))


def _round_width(value, quantum):
    return max(quantum, int(value / quantum + 0.5) * quantum)


def ed_stage_widths(width_ratio, resnext=False):
    """Per-stage transformation-branch widths of an -A/-B variant: ``width_ratio`` x the official
    width (64..512 for ResNets, 128..1024 for the 32-group ResNeXts), rounded to a multiple of 8
    (ResNet) or 32 (ResNeXt: an integer number of channels per group)."""
    base = (128, 256, 512, 1024) if resnext else (64, 128, 256, 512)
    quantum = ED_GROUPS if resnext else 8
    return tuple(_round_width(width_ratio * w, quantum) for w in base)


class EDResNet(ResNet):
    """ResNet / ResNeXt with ED bottlenecks (torchvision stem and head, official names).

    resnext: the official ResNeXt-ED layout: planes 128/256/512/1024 (= C*d*2^stage with C=32,
        d=4), expansion 2, grouped 3x3 with 32 groups (width = planes).
    se: SE (reduction 16) after ``bn3`` of every block, as ``se_resnet50_ed``/``se_resnext50_ed``.
    width_ratio: None for the released models; the -A/-B ratio otherwise (see module docstring).
    """

    def __init__(self, layers, class_dim=1000, resnext=False, se=False, width_ratio=None, **kw):
        self.resnext = resnext
        self.se = se
        self.width_ratio = width_ratio
        self.ed_expansion = 2 if resnext else 4
        self.ed_planes = (128, 256, 512, 1024) if resnext else (64, 128, 256, 512)
        groups = ED_GROUPS if resnext else 1
        self.stage_widths = (self.ed_planes if width_ratio is None
                             else ed_stage_widths(width_ratio, resnext))
        self._se_layers = {}      # block_kwargs is asked twice for a stage's first block
        # resnet.py's Bottleneck width is int(planes * base_width / 64) * groups: base_width
        # 64 / groups gives the official width (= planes) for both layouts.
        super().__init__(EDBottleneck, layers, class_dim=class_dim, groups=groups,
                         width_per_group=64 // groups, stage_planes=self.ed_planes, **kw)
        del self._se_layers

    @staticmethod
    def _make_fc(in_features, class_dim):
        return _torch_linear(in_features, class_dim)   # the official init zeroes fc.bias

    def block_kwargs(self, stage, index):
        planes = self.ed_planes[stage]
        kw = dict(expansion=self.ed_expansion, ed_channels=planes, last_stage=stage == 3)
        if self.se:
            if (stage, index) not in self._se_layers:
                self._se_layers[stage, index] = SELayer(planes * self.ed_expansion)
            kw["attn"] = ("se", self._se_layers[stage, index])
        return kw

    def _make_layer(self, stage, planes, blocks, stride):
        # Narrowed branches of -A/-B: choose base_width so that resnet.py's width formula
        # int(planes * base_width / 64) * groups gives exactly this stage's width (exact in
        # binary floating point: widths are multiples of 8 and planes powers of two).
        width = self.stage_widths[stage]
        self.base_width = 64.0 * (width // self.groups) / planes
        layer = super()._make_layer(stage, planes, blocks, stride)
        got = layer[0].conv2.weight.shape[0]
        if got != width:
            raise AssertionError(f"stage {stage}: branch width {got}, expected {width}")
        return layer

    def check_input_size(self, x):
        if not paddle.in_dynamic_mode():      # symbolic shapes while exporting
            return
        h, w = x.shape[2], x.shape[3]
        if not (ed_input_size_ok(h) and ed_input_size_ok(w)):
            raise ValueError(_size_rule_message(f"input size {h}x{w}"))

    def forward_stages(self, x):
        self.check_input_size(x)
        return super().forward_stages(x)


def _ed(layers, class_dim, kw, **cfg):
    return EDResNet(layers, class_dim=class_dim, **cfg, **kw)


_R50, _R101, _R152 = [3, 4, 6, 3], [3, 4, 23, 3], [3, 8, 36, 3]

# Per-variant branch width ratios of the unreleased -A/-B models (docs/ED_efficient_variants.md):
# the two-decimal ratio whose measured GMACs is closest to the published GFLOPs.
WIDTH_RATIOS = {
    "ED_ResNet50_A": 0.96, "ED_ResNet50_B": 0.54,
    "ED_ResNet101_A": 0.98, "ED_ResNet101_B": 0.56,
    "ED_ResNet152_A": 0.98, "ED_ResNet152_B": 0.56,
    "ED_ResNeXt50_A": 0.93, "ED_ResNeXt50_B": 0.60,
    "ED_ResNeXt101_A": 0.91, "ED_ResNeXt101_B": 0.60,
}
# Published GFLOPs (= GMACs) of the -A/-B variants.
PUBLISHED_GFLOPS = {
    "ED_ResNet50_A": 4.0, "ED_ResNet50_B": 2.1,
    "ED_ResNet101_A": 7.8, "ED_ResNet101_B": 3.9,
    "ED_ResNet152_A": 11.5, "ED_ResNet152_B": 5.6,
    "ED_ResNeXt50_A": 4.2, "ED_ResNeXt50_B": 2.9,
    "ED_ResNeXt101_A": 7.9, "ED_ResNeXt101_B": 5.4,
}


# ---- released models (official checkpoints; paper_top1 = 100 - published top-1 error) ----

@register_model(paper_top1=76.88, family=FAMILY)
def ED_ResNet50(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw)


@register_model(paper_top1=77.79, family=FAMILY)
def ED_ResNet101(class_dim=1000, **kw):
    return _ed(_R101, class_dim, kw)


@register_model(paper_top1=78.02, family=FAMILY)
def ED_ResNet152(class_dim=1000, **kw):
    return _ed(_R152, class_dim, kw)


@register_model(paper_top1=77.99, family=FAMILY)
def ED_ResNeXt50(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, resnext=True)


@register_model(paper_top1=79.07, family=FAMILY)
def ED_ResNeXt101(class_dim=1000, **kw):
    return _ed(_R101, class_dim, kw, resnext=True)


@register_model(family=FAMILY)       # released, no published ImageNet figure
def ED_SE_ResNet50(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, se=True)


@register_model(family=FAMILY)       # released, no published ImageNet figure
def ED_SE_ResNeXt50(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, resnext=True, se=True)


# ---- -A / -B efficient variants (not released; widths chosen to match the published FLOPs) ----

@register_model(paper_top1=76.92, family=FAMILY)
def ED_ResNet50_A(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, width_ratio=WIDTH_RATIOS["ED_ResNet50_A"])


@register_model(paper_top1=76.06, family=FAMILY)
def ED_ResNet50_B(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, width_ratio=WIDTH_RATIOS["ED_ResNet50_B"])


@register_model(paper_top1=77.77, family=FAMILY)
def ED_ResNet101_A(class_dim=1000, **kw):
    return _ed(_R101, class_dim, kw, width_ratio=WIDTH_RATIOS["ED_ResNet101_A"])


@register_model(paper_top1=76.86, family=FAMILY)
def ED_ResNet101_B(class_dim=1000, **kw):
    return _ed(_R101, class_dim, kw, width_ratio=WIDTH_RATIOS["ED_ResNet101_B"])


@register_model(paper_top1=77.99, family=FAMILY)
def ED_ResNet152_A(class_dim=1000, **kw):
    return _ed(_R152, class_dim, kw, width_ratio=WIDTH_RATIOS["ED_ResNet152_A"])


@register_model(paper_top1=77.48, family=FAMILY)
def ED_ResNet152_B(class_dim=1000, **kw):
    return _ed(_R152, class_dim, kw, width_ratio=WIDTH_RATIOS["ED_ResNet152_B"])


@register_model(paper_top1=77.97, family=FAMILY)
def ED_ResNeXt50_A(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, resnext=True, width_ratio=WIDTH_RATIOS["ED_ResNeXt50_A"])


@register_model(paper_top1=77.39, family=FAMILY)
def ED_ResNeXt50_B(class_dim=1000, **kw):
    return _ed(_R50, class_dim, kw, resnext=True, width_ratio=WIDTH_RATIOS["ED_ResNeXt50_B"])


@register_model(paper_top1=79.03, family=FAMILY)
def ED_ResNeXt101_A(class_dim=1000, **kw):
    return _ed(_R101, class_dim, kw, resnext=True, width_ratio=WIDTH_RATIOS["ED_ResNeXt101_A"])


@register_model(paper_top1=78.43, family=FAMILY)
def ED_ResNeXt101_B(class_dim=1000, **kw):
    return _ed(_R101, class_dim, kw, resnext=True, width_ratio=WIDTH_RATIOS["ED_ResNeXt101_B"])

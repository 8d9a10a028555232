"""Parameters and FLOPs the way the papers count them (the tables: ``ppcls.analysis.model_zoo``).

Three counters, all measured with forward hooks on one image (eval mode, no gradients):

``macs``
    Multiply-adds of convolutions, transposed convolutions (counted on their input grid) and
    linear layers: what ECA, RLA, ED, DLA and ReXNet call FLOPs in their text, and the
    "GMACs" column of the reference. ``count_macs`` returns it.
``thop-2019``
    thop (Lyken17/pytorch-OpCounter) 0.0.23 as built between 17 July and 6 August 2019, the
    rules that reproduce every figure of ECA-Net's table (its first README is of 15 September
    2019): convolutions count output elements x in_channels x (kernel + 1 if bias) / groups,
    BatchNorm 4 x elements, ReLU / ReLU6 / LeakyReLU 1 x elements, average pooling
    (prod(kernel_size as given) + 1) x outputs (an int k counts k, thop's quirk), adaptive
    average pooling (in / out + 1) x outputs, linear (2 x in - 1) x outputs; max pooling,
    dropout and every type without a rule (Sigmoid, Tanh, SiLU, functional calls...) count
    zero. Each module's count is *assigned* at every call, so a module called several times
    (the ResNet block's shared ``relu``) counts its last call only. Totals are float32 sums in
    module order. Parameters: those of every leaf layer.
``thop-2020``
    thop 0.0.31.post2005241907 (the last 0.0.31 build, PyTorch 1.5-1.7 era; RLA-Net's):
    convolutions and transposed convolutions count output elements x (in_channels / groups x
    kernel + 1 if bias), BatchNorm 2 x elements, linear in x outputs, average pooling
    1 x outputs, adaptive average pooling (in / out + 1) x outputs, LeakyReLU 1 x elements,
    upsampling by mode; ReLU, ReLU6, max pooling, dropout and types without a rule count zero.
    Calls accumulate, float64. Parameters only of layers that have a rule and ran.

The papers print thop counts in binary units with three decimals (``thop_format``: 2^20, 2^30)
and round that print to their table's precision (``printed_as``): ECA-Net50's 4.09 GMACs are
its "3.86G". thop counts PyTorch module calls, so where a Paddle port computes functionally
what the official code computes with a counted module (or the reverse) there is an equivalent
rule here: ``_THOP_EQUIVALENTS`` (our ECA pools with ``mean`` where the official ``eca_layer``
calls ``nn.AdaptiveAvgPool2d``) and ``_THOP_UNCOUNTED`` (layers the official code runs as a
function, e.g. dsRLA-MobileNetV2's final pooling). These cover the ECA-Net and RLA-Net models
and the torchvision baselines, whose papers publish thop figures; for the other families the
thop counters describe our layers as they are (e.g. DLA's global pooling is adaptive here, a
fixed ``AvgPool2d(7)`` in the official code).
"""
import contextlib
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import paddle
import paddle.nn as nn

COUNTERS = ("macs", "thop-2019", "thop-2020")
THOP_VERSIONS = ("thop-2019", "thop-2020")
# Which thop build each paper's table was made with (family as registered -> counter);
# ``--counter thop`` resolves through this, every other family gets the newest 0.0.31 build.
THOP_BY_FAMILY = {"ECA-Net": "thop-2019", "RLA-Net": "thop-2020"}
DEFAULT_THOP = "thop-2020"


def count_params(model):
    """Trainable parameters, each shared tensor once (BN running statistics are buffers)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or p.stop_gradient:
            continue
        seen.add(id(p))
        total += int(np.prod(p.shape))
    return total


# ----------------------------------------------------------------------------- layer rules
def _numel(shape):
    return int(np.prod(shape)) if len(shape) else 1


_CONV = (nn.Conv1D, nn.Conv2D, nn.Conv3D)
_TCONV = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
_BN = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.BatchNorm)
_AVG = (nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)
_ADAPTIVE_AVG = (nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D)
_MAX = (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D, nn.AdaptiveMaxPool1D, nn.AdaptiveMaxPool2D,
        nn.AdaptiveMaxPool3D)
_UPSAMPLE = (nn.Upsample, nn.UpsamplingBilinear2D, nn.UpsamplingNearest2D)


def _in_channels(layer):
    """thop's ``in_channels`` (all groups) from the weight: Paddle conv weights are
    [out, in/g, *k], transposed ones [in, out/g, *k]."""
    w = layer.weight.shape
    return w[0] if type(layer) in _TCONV else w[1] * layer._groups


def _upsample_ops(layer, out_numel):
    if isinstance(layer, nn.UpsamplingNearest2D):
        mode = "nearest"
    elif isinstance(layer, nn.UpsamplingBilinear2D):
        mode = "bilinear"
    else:
        mode = str(getattr(layer, "mode", "nearest")).lower()
    per = {"nearest": 0, "linear": 5, "bilinear": 11, "bicubic": 224 + 35, "trilinear": 13 * 2 + 5}
    return out_numel * per.get(mode, 0)


def _adaptive_avg_ops(in_shape, out_shape):
    kernel = 1
    for i, o in zip(in_shape[2:], out_shape[2:]):
        kernel *= i // o
    return (kernel + 1) * _numel(out_shape)


def _avg_kernel(layer):
    k = layer.ksize if hasattr(layer, "ksize") else layer.kernel_size
    return int(np.prod(k))          # torch.prod(Tensor([kernel_size])): an int k gives k


def _ops_2019(kind, layer, in_shape, out_shape):
    """thop 0.0.23 (late July 2019): ops of one call of a ``kind`` layer, None where it had
    no rule."""
    if kind in _CONV:
        bias = 1 if layer.bias is not None else 0
        kernel = _numel(layer.weight.shape[2:])
        return _in_channels(layer) * _numel(out_shape) * (kernel + bias) // layer._groups
    if kind is nn.Conv2DTranspose:
        bias = 1 if layer.bias is not None else 0
        kernel = _numel(layer.weight.shape[2:])
        return _numel(out_shape) * (kernel * _in_channels(layer) // layer._groups + bias)
    if kind in _BN:
        return 4 * _numel(in_shape)
    if kind in (nn.ReLU, nn.ReLU6, nn.LeakyReLU):
        return _numel(in_shape)
    if kind in _AVG:
        return (_avg_kernel(layer) + 1) * _numel(out_shape)
    if kind in _ADAPTIVE_AVG:
        return _adaptive_avg_ops(in_shape, out_shape)
    if kind is nn.Linear:
        return (2 * layer.weight.shape[0] - 1) * _numel(out_shape)
    return None


def _ops_2020(kind, layer, in_shape, out_shape):
    """thop 0.0.31.post2005241907: ops of one call of a ``kind`` layer, None where it had no
    rule."""
    if kind in _CONV or kind in _TCONV:
        bias = 1 if layer.bias is not None else 0
        kernel = _numel(layer.weight.shape[2:])
        return _numel(out_shape) * (_in_channels(layer) // layer._groups * kernel + bias)
    if kind in _BN or kind is nn.SyncBatchNorm:
        return 2 * _numel(in_shape)
    if kind is nn.LeakyReLU:
        return _numel(in_shape)
    if kind in _AVG:
        return _numel(out_shape)
    if kind in _ADAPTIVE_AVG:
        return _adaptive_avg_ops(in_shape, out_shape)
    if kind is nn.Linear:
        return layer.weight.shape[0] * _numel(out_shape)
    if kind in _UPSAMPLE:
        return _upsample_ops(layer, _numel(out_shape))
    if kind in (nn.ReLU, nn.ReLU6, nn.Dropout, nn.ZeroPad2D) or kind in _MAX:
        return 0
    return None


# version -> (ops of one call, module counts only its last call, float32 totals,
#             parameters of every leaf (else: of layers with a rule that ran))
_THOP_RULES = {
    "thop-2019": (_ops_2019, True, True, True),
    "thop-2020": (_ops_2020, False, False, False),
}


def _macs(layer, in_shape, out_shape):
    """Conv / transposed conv (input grid) / linear multiply-adds of one call, else None."""
    if isinstance(layer, _TCONV):
        return _numel(in_shape) * _numel(layer.weight.shape[1:])
    if isinstance(layer, _CONV):
        return _numel(out_shape) * _numel(layer.weight.shape[1:])
    if isinstance(layer, nn.Linear):
        in_f, out_f = layer.weight.shape
        return _numel(out_shape[:-1]) * in_f * out_f
    return None


def _eca_pool(layer, in_shape, out_shape):
    # official eca_layer: self.avg_pool = nn.AdaptiveAvgPool2d(1) on the block output
    return in_shape, list(in_shape[:2]) + [1] * (len(in_shape) - 2)


# "module.Class" of a ppcls layer that computes functionally what its official counterpart
# runs as a counted module -> (that module's Paddle type, fn(layer, in, out) -> its in/out
# shapes). thop sees it as one more leaf right before the layer's own sublayers.
_THOP_EQUIVALENTS = {
    "ppcls.modeling.architectures.layers.ECA": (nn.AdaptiveAvgPool2D, _eca_pool),
}
# ("module.Class" of the parent, attribute) of layers the official code runs as a function
# (not counted by thop).
_THOP_UNCOUNTED = {
    ("ppcls.modeling.architectures.rla_net.RLA_MobileNetV2Net", "avgpool"),
}


def _class_key(layer):
    return f"{type(layer).__module__}.{type(layer).__qualname__}"


def _first_shape(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            s = _first_shape(v)
            if s is not None:
                return s
        return None
    return list(value.shape) if hasattr(value, "shape") else None


# ----------------------------------------------------------------------------- profiling
@dataclass
class Counts:
    """Everything the counters measure in one forward pass of one model."""
    params: int                                  # trainable parameters (count_params)
    macs: int                                    # conv + transposed conv (input grid) + linear
    thop_ops: dict = field(default_factory=dict)      # version -> ops
    thop_params: dict = field(default_factory=dict)   # version -> parameters thop reports
    thop_zero_types: dict = field(default_factory=dict)  # version -> layer types with no rule
    input_size: int = 224
    name: str = ""

    def value(self, counter):
        """(params, flops) as ``counter`` reports them."""
        if counter == "macs":
            return self.params, self.macs
        if counter in THOP_VERSIONS:
            return self.thop_params[counter], self.thop_ops[counter]
        raise ValueError(f"counter must be one of {', '.join(COUNTERS)}, not {counter!r}")


def _trainable_numel(layer):
    # Paddle keeps BN running statistics as stop_gradient parameters (torch: buffers)
    return sum(int(np.prod(p.shape)) for p in layer.parameters() if not p.stop_gradient)


class _Total:
    """thop's running sum: float32 tensors (2019) or float64 (2020)."""

    def __init__(self, f32):
        self.f32, self.value = f32, 0.0

    def add(self, x):
        self.value = float(np.float32(self.value) + np.float32(x)) if self.f32 else self.value + x


def _thop_totals(entries, calls, version):
    """(ops, params, types without a rule) as thop ``version`` sums the leaf modules
    ``entries`` ([(type, layer, shapes or None, counted)] in module order)."""
    rule, last_only, f32, all_leaves = _THOP_RULES[version]
    ops, params, zero = _Total(f32), _Total(f32), set()
    probe = [1, 1, 1, 1]
    for kind, layer, shapes, counted in entries:
        per_call = []
        if counted:
            for in_shape, out_shape in calls.get(id(layer), []):
                if shapes is not None:              # a module of the official code, not ours
                    in_shape, out_shape = shapes(layer, in_shape, out_shape)
                per_call.append(rule(kind, layer, in_shape, out_shape))
        own = layer if shapes is None else None
        has_rule = counted and rule(kind, own, probe, probe) is not None
        if not has_rule:
            zero.add(kind.__name__)
        module_ops = 0
        if has_rule and per_call:
            if last_only:                       # thop assigned the count at every call
                module_ops = per_call[-1]
            else:
                acc = _Total(f32)
                for v in per_call:
                    acc.add(v)
                module_ops = acc.value
        ops.add(module_ops)
        if shapes is None and (all_leaves or (has_rule and per_call)):
            params.add(_trainable_numel(layer))
    return ops.value, params.value, sorted(zero)


def profile_model(model, input_size=224, in_channels=3):
    """Run one ``in_channels x input_size x input_size`` image through ``model`` in eval mode
    and measure every counter at once (``Counts``)."""
    named = list(model.named_sublayers(include_self=True))
    by_name = dict(named)
    entries = []                       # thop's leaf modules in module order
    for name, layer in named:
        extra = _THOP_EQUIVALENTS.get(_class_key(layer))
        if extra is not None:
            entries.append((extra[0], layer, extra[1], True))
        if list(layer.children()):
            continue
        parent, _, attr = name.rpartition(".")
        owner = by_name.get(parent, model) if name else None
        uncounted = owner is not None and (_class_key(owner), attr) in _THOP_UNCOUNTED
        entries.append((type(layer), layer, None, not uncounted))
    calls = {}

    def hook(layer, inputs, output):
        in_shape, out_shape = _first_shape(inputs), _first_shape(output)
        if in_shape is not None and out_shape is not None:
            calls.setdefault(id(layer), []).append((in_shape, out_shape))

    handles = [layer.register_forward_post_hook(hook) for _, layer in named]
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, in_channels, input_size, input_size]))
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    macs = 0
    for _, layer in named:
        for in_shape, out_shape in calls.get(id(layer), []):
            m = _macs(layer, in_shape, out_shape)
            macs += m or 0
    counts = Counts(params=count_params(model), macs=int(macs), input_size=input_size)
    for v in THOP_VERSIONS:
        ops, params, zero = _thop_totals(entries, calls, v)
        counts.thop_ops[v], counts.thop_params[v] = int(ops), int(params)
        counts.thop_zero_types[v] = zero
    return counts


def count_macs(model, input_size=224, in_channels=3):
    """MACs of one ``in_channels x input_size x input_size`` image, in eval mode."""
    return profile_model(model, input_size, in_channels).macs


# ----------------------------------------------------------------------------- building
_RANDOM_OPS = ("gaussian", "uniform", "truncated_gaussian_random")


@contextlib.contextmanager
def skip_random_init():
    """Build models with zero weights instead of random ones (counts depend on shapes only;
    drawing ~60M gaussians is most of the time it takes to build a big model on CPU)."""
    from paddle import _C_ops
    saved = {n: getattr(_C_ops, n) for n in _RANDOM_OPS if hasattr(_C_ops, n)}

    def zeros_like_op(fn):
        def op(shape, *args, **kwargs):
            dtype = fn([1], *args, **kwargs).dtype     # the dtype the real op would give
            return paddle.zeros(shape, dtype)
        return op

    for n, fn in saved.items():
        setattr(_C_ops, n, zeros_like_op(fn))
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(_C_ops, n, fn)


def count_model(name, input_size=224, class_dim=1000, fast=True):
    """Build the registered model ``name`` and measure it (``Counts``); nothing is cached, so
    the numbers always reflect the code."""
    from ..modeling import build_model
    ctx = skip_random_init() if fast else contextlib.nullcontext()
    with ctx:
        model = build_model(name, class_dim=class_dim)
    counts = profile_model(model, input_size)
    counts.name = name
    return counts


# ----------------------------------------------------------------------------- formatting
def format_counts(params, macs, units="decimal"):
    """'25.56M / 4.09G' (decimal, 10^6 / 10^9) or '24.37M / 3.81G' (binary, 2^20 / 2^30)."""
    if units == "binary":
        return f"{params / 2 ** 20:.2f}M / {macs / 2 ** 30:.2f}G"
    if units == "decimal":
        return f"{params / 1e6:.2f}M / {macs / 1e9:.3f}G"
    raise ValueError(f"units must be 'decimal' or 'binary', not {units!r}")


def thop_format(num, digits=2):
    """A count as the ECA/RLA ``paras_flops.py`` print it: the unit chosen on the decimal value
    (> 1e9 -> G, > 1e6 -> M, > 1e3 -> K), the value in powers of 1024: '3.86G', '312.92M'."""
    for limit, power, unit in ((1e12, 4, "T"), (1e9, 3, "G"), (1e6, 2, "M"), (1e3, 1, "K")):
        if num > limit:
            return f"{num / 1024 ** power:.{digits}f}{unit}"
    return f"{num:.{digits}f}B"


def _half_up(printed, digits):
    q = Decimal(1).scaleb(-digits)
    return f"{Decimal(printed[:-1]).quantize(q, rounding=ROUND_HALF_UP)}{printed[-1]}"


def printed_as(num, published):
    """``num`` as a paper table shows it next to ``published`` ('3.86G', '351.8M'): the
    ``paras_flops.py`` print with three decimals ('57.405M'), rounded half up to the figure's
    own precision ('57.41M'). Returns the three-decimal print when the unit differs."""
    m = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?\s*([KMGTB])\s*", published)
    if not m:
        raise ValueError(f"not a published figure like '3.86G': {published!r}")
    printed = thop_format(num, 3)
    if printed[-1] != m.group(3):
        return printed
    return _half_up(printed, len(m.group(2) or ""))


def paper_format(num):
    """The ECA/RLA tables' style: binary units, the three-decimal print rounded half up to two
    decimals below 100 ('24.37M', '3.86G') and to one from 100 on ('319.9M')."""
    printed = thop_format(num, 3)
    return _half_up(printed, 2 if float(printed[:-1]) < 100 else 1)

"""Parameters and MACs the way the papers count them.

MACs (what ECA, RLA, ED, DLA and ReXNet call FLOPs) are the multiply-adds of convolutions,
transposed convolutions (counted on their input grid) and linear layers, measured with forward
hooks on one image. ECA and RLA publish thop figures in binary units (params / 2^20,
MACs / 2^30); ``format_counts`` prints either.
"""
import numpy as np
import paddle
import paddle.nn as nn


def count_params(model):
    """Trainable parameters, each shared tensor once (BN running statistics are buffers)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or p.stop_gradient:
            continue
        seen.add(id(p))
        total += int(np.prod(p.shape))
    return total


def _conv_macs(layer, inputs, output):
    w = layer.weight.shape                         # [out, in/groups, *k]
    return int(np.prod(output.shape)) * int(np.prod(w[1:]))


def _transposed_conv_macs(layer, inputs, output):
    w = layer.weight.shape                         # [in, out/groups, *k]
    return int(np.prod(inputs[0].shape)) * int(np.prod(w[1:]))


def _linear_macs(layer, inputs, output):
    in_f, out_f = layer.weight.shape
    return int(np.prod(output.shape[:-1])) * in_f * out_f


_COUNTERS = (
    ((nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose), _transposed_conv_macs),
    ((nn.Conv1D, nn.Conv2D, nn.Conv3D), _conv_macs),
    ((nn.Linear,), _linear_macs),
)


def count_macs(model, input_size=224, in_channels=3):
    """MACs of one ``in_channels x input_size x input_size`` image, in eval mode."""
    totals = []
    hooks = []
    for layer in model.sublayers(include_self=True):
        for types, fn in _COUNTERS:
            if isinstance(layer, types):
                hooks.append(layer.register_forward_post_hook(
                    lambda lyr, inp, out, fn=fn: totals.append(fn(lyr, inp, out))))
                break
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, in_channels, input_size, input_size]))
    finally:
        for h in hooks:
            h.remove()
        if was_training:
            model.train()
    return int(sum(totals))


def format_counts(params, macs, units="decimal"):
    """'25.56M / 4.09G' (decimal, 10^6 / 10^9) or '24.37M / 3.81G' (binary, 2^20 / 2^30)."""
    if units == "binary":
        return f"{params / 2 ** 20:.2f}M / {macs / 2 ** 30:.2f}G"
    if units == "decimal":
        return f"{params / 1e6:.2f}M / {macs / 1e9:.3f}G"
    raise ValueError(f"units must be 'decimal' or 'binary', not {units!r}")

"""Inference preprocessing: the eval transforms of a recipe, written to and read from inference.yml.

inference.yml stores the operator list itself (``PreProcess.transform_ops``, the same
``- OpName: {params}`` form as a recipe's ``VALID.transforms``) with every parameter spelled out
(resize_short or size, crop, interpolation, scale, mean, std, channel order). The predictor builds
it with ``ppcls.data.transforms.build_transforms``: the very classes that training-time evaluation
uses, so exported preprocessing cannot drift from ``tools/eval.py``.
"""
import numpy as np

from ..data.transforms import INTERPOLATIONS, OPS, build_transforms, check_ops
from ..utils.config import ConfigError, Where
from ..utils.errors import UserError

# Operators that are deterministic and therefore allowed at inference.
DETERMINISTIC_OPS = ("DecodeImage", "ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class InferenceError(UserError, ValueError):
    """Bad input to export or inference: one clear message, non-zero exit."""


def _interp_name(flag):
    for name, value in INTERPOLATIONS.items():
        if value == flag:
            return name
    return int(flag)


def _floats32(array):
    """float32 values as the shortest decimals that read back to the same float32 (0.485)."""
    return [float(str(v)) for v in np.asarray(array, dtype=np.float32).reshape(-1)]


def _explicit(op):
    """``{Name: params}`` with every parameter spelled out, read back from a built operator
    (so the defaults live only in the operator classes)."""
    name = type(op).__name__
    if name == "DecodeImage":
        return {name: {"to_rgb": bool(op.to_rgb), "channel_first": bool(op.channel_first)}}
    if name == "ResizeImage":
        if op.resize_short is not None:
            return {name: {"resize_short": int(op.resize_short),
                           "interpolation": _interp_name(op.interp)}}
        return {name: {"size": [int(op.w), int(op.h)], "interpolation": _interp_name(op.interp)}}
    if name == "CropImage":
        return {name: {"size": [int(op.w), int(op.h)]}}
    if name == "NormalizeImage":
        order = "chw" if op.mean.shape == (3, 1, 1) else "hwc"
        return {name: {"scale": float(op.scale), "mean": _floats32(op.mean),
                       "std": _floats32(op.std), "order": order}}
    if name == "ToCHWImage":
        return {name: {}}
    raise InferenceError(f"{name} is not an inference operator")


def export_ops(transforms, source):
    """Validated, explicit copy of a recipe's eval ``transforms`` for inference.yml.

    Fails on random operators (a prediction must not depend on chance) and on lists that do not
    end in a CHW float image."""
    where = Where(source)
    if not transforms:
        raise InferenceError(f"{source}: VALID.transforms is empty; the export needs the eval "
                             f"preprocessing (DecodeImage, ResizeImage, CropImage, NormalizeImage, "
                             f"ToCHWImage)")
    check_ops(transforms, where)
    names = [next(iter(item)) for item in transforms]
    random_ops = [n for n in names if n not in DETERMINISTIC_OPS]
    if random_ops:
        raise InferenceError(f"{source}: VALID.transforms has random operator(s) {random_ops}; "
                             f"inference preprocessing must be deterministic (use "
                             f"{', '.join(DETERMINISTIC_OPS)})")
    if names[0] != "DecodeImage":
        raise InferenceError(f"{source}: VALID.transforms must start with DecodeImage, got {names[0]}")
    ops = [_explicit(op) for op in build_transforms(transforms)]
    check_layout(ops, source)
    return ops


def default_ops(resize_short=256, crop=224, interpolation="bilinear", mean=None, std=None,
                scale=1.0 / 255.0):
    """ImageNet-style eval preprocessing: resize the short side, center crop, normalise, CHW."""
    if interpolation not in INTERPOLATIONS:
        raise InferenceError(f"--interpolation must be one of {sorted(INTERPOLATIONS)}, got "
                             f"{interpolation!r}")
    if crop and resize_short and crop > resize_short:
        raise InferenceError(f"--crop {crop} is larger than --resize_short {resize_short}; the "
                             f"center crop must fit in the resized image")
    ops = [{"DecodeImage": {"to_rgb": True}},
           {"ResizeImage": {"resize_short": int(resize_short), "interpolation": interpolation}}]
    if crop:
        ops.append({"CropImage": {"size": int(crop)}})
    ops += [{"NormalizeImage": {"scale": scale, "mean": list(mean or IMAGENET_MEAN),
                                "std": list(std or IMAGENET_STD), "order": "hwc"}},
            {"ToCHWImage": {}}]
    return export_ops(ops, "export preprocessing")


def check_layout(ops, source):
    """The op list must produce a float32 CHW image (NCHW batches)."""
    names = [next(iter(item)) for item in ops]
    if "NormalizeImage" not in names:
        raise InferenceError(f"{source}: preprocessing has no NormalizeImage; the model takes "
                             f"normalised float32 input")
    if ops[0]["DecodeImage"].get("channel_first", False):
        raise InferenceError(f"{source}: DecodeImage channel_first is not supported for "
                             f"inference; keep HWC and end with ToCHWImage")
    if "ToCHWImage" not in names:
        raise InferenceError(f"{source}: preprocessing must end in a CHW image (add ToCHWImage "
                             f"after NormalizeImage)")


def channel_order(ops):
    return "RGB" if ops[0]["DecodeImage"].get("to_rgb", True) else "BGR"


def output_hw(ops):
    """(h, w) every image has after preprocessing, or None when it depends on the image
    (resize_short without a crop)."""
    hw = None
    for item in ops:
        (name, params), = item.items()
        if name == "CropImage" or (name == "ResizeImage" and "size" in params):
            size = params["size"]
            w, h = (size, size) if isinstance(size, int) else size
            hw = (int(h), int(w))
        elif name == "ResizeImage":
            hw = None
    return hw


def describe(ops):
    """One line for logs: 'resize_short 256 bilinear, crop 224x224, mean ..., RGB, NCHW'."""
    parts = []
    for item in ops:
        (name, p), = item.items()
        if name == "ResizeImage":
            parts.append(f"resize_short {p['resize_short']}" if "resize_short" in p
                         else f"resize {p['size'][0]}x{p['size'][1]}")
            parts[-1] += f" {p['interpolation']}"
        elif name == "CropImage":
            parts.append(f"center crop {p['size'][0]}x{p['size'][1]}")
        elif name == "NormalizeImage":
            parts.append(f"scale {p['scale']:.6g}, mean {p['mean']}, std {p['std']}")
    return ", ".join(parts + [channel_order(ops), "NCHW"])


def build_ops(ops, source):
    """Operators from inference.yml's transform_ops, validated like a recipe's transforms."""
    if not isinstance(ops, list) or not ops:
        raise InferenceError(f"{source}: PreProcess.transform_ops must be a non-empty list of "
                             f"`- OpName: {{params}}` entries")
    norm = []
    for i, item in enumerate(ops):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise InferenceError(f"{source}: PreProcess.transform_ops.{i}: expected a single "
                                 f"`OpName: {{params}}` mapping, got {item!r}")
        (name, params), = item.items()
        if name not in DETERMINISTIC_OPS and name in OPS:
            raise InferenceError(f"{source}: PreProcess.transform_ops.{i}: {name} is random; "
                                 f"inference preprocessing must be deterministic")
        norm.append({name: params or {}})
    try:
        check_ops(norm, Where(source).child("PreProcess.transform_ops"))
    except ConfigError as e:
        raise InferenceError(str(e)) from None
    if next(iter(norm[0])) != "DecodeImage":
        raise InferenceError(f"{source}: PreProcess.transform_ops must start with DecodeImage")
    check_layout(norm, source)
    return build_transforms(norm), norm

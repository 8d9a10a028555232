"""Official PyTorch (or PaddleClas) checkpoint -> Paddle state dict.

The Paddle models keep the official module names, so conversion is mostly generic:
unwrap ``state_dict`` / strip ``module.``, drop ``num_batches_tracked``, rename BN statistics
(``running_mean`` -> ``_mean``, ``running_var`` -> ``_variance``) and transpose Linear weights
(PyTorch stores [out, in], Paddle [in, out]). What differs per family (dead layers, shared
tensors, another naming such as timm's) is a small ``Rules`` entry registered by the family's
module in this package, per source naming: ``official`` (PyTorch checkpoints; timm's names are
renamed by the same entries) or ``paddleclas`` (PaddleClas ``.pdparams``: Paddle layout, no
transpose). The core works on ``{name: numpy array}``: no PyTorch needed.
"""
import os
import re
import tarfile
from dataclasses import dataclass, field

import numpy as np

from ..utils.errors import UserError


class ConversionError(UserError, ValueError):
    """A checkpoint that does not fit the architecture; the message lists every bad key."""


@dataclass
class Rules:
    """How one family's official names become ours.

    drop:   [(regex, reason)] official keys that have no counterpart on purpose (e.g. DLA's
            dead ``project`` layers); they are counted and reported, never silently lost.
    rename: [(regex, replacement)] applied in order with ``re.sub`` to every kept key.
    head:   our name of the classifier weight; it gives the class count.
    prepare: optional ``f({name: array}) -> {name: array}`` run before drop/rename, for a naming
            that cannot be renamed key by key (PaddleClas's flat ``blocks.K`` index).
    paddle_layout: the source already stores Linear weights as Paddle does ([in, out]).
    """
    drop: list = field(default_factory=list)
    rename: list = field(default_factory=list)
    head: str = "fc.weight"
    prepare: object = None
    paddle_layout: bool = False


_RULES = []  # [(naming, compiled arch regex, Rules)]


def register_rules(arch_pattern, rules, naming="official"):
    """Register ``rules`` for every architecture whose name fully matches ``arch_pattern``, for
    checkpoints in ``naming`` (``official``: PyTorch checkpoints; ``paddleclas``)."""
    _RULES.append((naming, re.compile(arch_pattern), rules))


def rules_for(arch, naming="official"):
    for kind, pattern, rules in _RULES:
        if kind == naming and pattern.fullmatch(arch):
            return rules
    raise ConversionError(f"no {naming} conversion rules for architecture {arch!r}: "
                          f"add a Rules entry in ppcls/convert/ for its family")


_WRAPPERS = ("state_dict", "model", "model_state_dict", "net")


def normalise_source(obj, source="checkpoint"):
    """Unwrap a training checkpoint and return ``{name: float ndarray}`` without the
    ``module.`` prefix of DataParallel and without ``num_batches_tracked`` counters."""
    for key in _WRAPPERS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ConversionError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    out = {}
    for name, value in obj.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if name.endswith("num_batches_tracked"):
            continue
        if hasattr(value, "detach"):             # a torch tensor
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.number):
            raise ConversionError(f"{source}: entry {name!r} is not a numeric tensor")
        out[name] = value
    if not out:
        raise ConversionError(f"{source}: no tensors found")
    return out


def _to_paddle_name(name):
    return re.sub(r"running_mean$", "_mean", re.sub(r"running_var$", "_variance", name))


def apply_rules(arch, src, naming="official"):
    """Drop and rename official keys. Returns (renamed dict, {reason: [dropped keys]})."""
    return rename_with(rules_for(arch, naming), src)


def rename_with(rules, src):
    """``apply_rules`` with a given Rules entry."""
    if rules.prepare is not None:
        src = rules.prepare(src)
    dropped, kept = {}, {}
    for name, value in src.items():
        reason = next((r for pat, r in rules.drop if re.search(pat, name)), None)
        if reason is not None:
            dropped.setdefault(reason, []).append(name)
            continue
        for pat, repl in rules.rename:
            name = re.sub(pat, repl, name)
        name = _to_paddle_name(name)
        if name in kept:
            raise ConversionError(f"two official keys map to {name!r}: check the rename rules")
        kept[name] = value
    return kept, dropped


def infer_class_dim(arch, renamed, naming="official"):
    rules = rules_for(arch, naming)
    if rules.head not in renamed:
        raise ConversionError(f"classifier weight {rules.head!r} not found in the checkpoint; "
                              f"is it a {arch} checkpoint?")
    shape = renamed[rules.head].shape
    # a Linear head is [in, out] in Paddle; a conv head is [out, in, 1, 1] in both layouts
    return int(shape[1] if rules.paddle_layout and len(shape) == 2 else shape[0])


def linear_weight_names(model):
    import paddle.nn as nn
    return {f"{name}.weight" if name else "weight"
            for name, layer in model.named_sublayers(include_self=True)
            if isinstance(layer, nn.Linear)}


def match_to_model(model, renamed, source="checkpoint", transpose_linear=True):
    """Fit renamed official tensors to ``model``'s state dict: transpose Linear weights (unless
    the source is in Paddle layout already), check that every key is used exactly once and
    every shape matches, else raise listing them all."""
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shared = sum(name in renamed for name in target)
    if shared < len(target) // 10:      # another architecture: a list of every key helps nobody
        raise ConversionError(
            f"{source} does not fit {type(model).__name__}: only {shared} of its {len(target)} "
            f"tensor names are in the file, whose {len(renamed)} tensors are named like "
            f"{', '.join(sorted(renamed)[:3])}; are these weights of another architecture? "
            f"Check -a (or ARCHITECTURE.name)")
    linear = linear_weight_names(model)
    out, problems = {}, []
    for name, shape in target.items():
        if name not in renamed:
            problems.append(f"missing in {source}: {name} {list(shape)}")
            continue
        value = renamed[name]
        if name in linear and value.ndim == 2 and transpose_linear:
            value = value.T
        elif value.ndim == 2 and len(shape) == 4 and shape[2:] == (1, 1):
            value = value.reshape(tuple(value.shape) + (1, 1))   # Linear head -> 1x1 conv head
        if tuple(value.shape) != shape:
            problems.append(f"shape mismatch for {name}: {source} has {list(value.shape)}, "
                            f"model expects {list(shape)}")
            continue
        out[name] = np.ascontiguousarray(value, dtype=np.float32)
    unexpected = sorted(set(renamed) - set(target))
    problems += [f"unexpected in {source}: {name} {list(renamed[name].shape)}" for name in unexpected]
    if problems:
        shown = "\n  ".join(problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise ConversionError(f"{source} does not fit {type(model).__name__} "
                              f"({len(problems)} problem(s)):\n  {shown}{more}")
    return out


def convert_state_dict(arch, src, class_dim=None, source="checkpoint", naming="official",
                       model=None, **model_kwargs):
    """Official ``{name: ndarray}`` -> (Paddle ``{name: ndarray}``, report dict).

    The architecture is built (on CPU, once) to learn the target names and shapes, unless the
    caller passes the ``model`` it will load into; the class count comes from the checkpoint's
    classifier unless ``class_dim`` is given.
    """
    src = normalise_source(src, source)
    renamed, dropped = apply_rules(arch, src, naming)
    if class_dim is None:
        class_dim = infer_class_dim(arch, renamed, naming)
    if model is None:
        from ..modeling import build_model
        model = build_model(arch, class_dim=class_dim, **model_kwargs)
    out = match_to_model(model, renamed, source,
                         transpose_linear=not rules_for(arch, naming).paddle_layout)
    report = {"arch": arch, "class_dim": class_dim, "converted": len(out),
              "dropped": {reason: len(keys) for reason, keys in dropped.items()}}
    return out, report


def load_source(path):
    """Read a checkpoint: ``.pth``/``.pth.tar``/``.pt`` (PyTorch, imported only here and only with
    ``weights_only=True``), ``.npz``, ``.safetensors`` or ``.pdparams`` (Paddle/PaddleClas; the
    pickle is checked against the allow-list first, see ppcls.utils.checkpoint)."""
    if not os.path.isfile(path) and os.path.isfile(path + ".pdparams"):
        path += ".pdparams"                     # a Paddle prefix, as pretrained_model takes
    lower = path.lower()
    if os.path.isdir(path) or (lower.endswith(".tar") and tarfile.is_tarfile(path)):
        # PyTorch's .pth.tar files are zip or pickle files; a real tar (or its unpacked folder)
        # of one file per variable is PaddleClas 1.x's static-graph format
        raise ConversionError(f"{path}: a folder or tar archive of variables (PaddleClas 1.x "
                              f"static-graph weights, e.g. ResNet50_pretrained.tar) is not "
                              f"supported; use the .pdparams file PaddleClas 2.x publishes for "
                              f"the model")
    if not os.path.isfile(path):
        raise ConversionError(f"weights file not found: {path}")
    if lower.endswith(".pdparams"):
        from ..utils.checkpoint import load_params_file
        return load_params_file(path)
    if lower.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if lower.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as e:
            raise ConversionError("reading .safetensors needs `pip install safetensors`") from e
        return load_file(path)
    if lower.endswith((".pth", ".pth.tar", ".pt", ".tar", ".bin")):
        try:
            import torch
        except ImportError as e:
            raise ConversionError(
                f"{path} is a PyTorch file: install PyTorch to read it (pip install torch), "
                f"or convert it to .npz/.safetensors elsewhere") from e
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many kinds for bad files
            raise ConversionError(f"cannot read {path} as a PyTorch checkpoint "
                                  f"(weights_only=True): {e}") from e
    raise ConversionError(f"unknown weights format for {path}: use .pth/.pth.tar, .npz, "
                          f".safetensors or .pdparams")

"""A registered model with the class count of its weights: the classifier's tensors are found by
building the model with a class count no layer width equals, then read from the file.

Used by export (``tools/export_model.py -m ARCH -p WEIGHTS``) and by ``ppcls.build_model(name,
pretrained=...)``.
"""
import numpy as np
import paddle

from ..modeling import build_model, get_model_factory
from ..modeling.distillation import student_state
from ..utils import checkpoint as ckpt
from .preprocess import InferenceError


class ArchParamsError(InferenceError):
    """Constructor arguments the architecture does not take (``reason``: Python's message)."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


SENTINEL_CLASSES = 997      # a class count no layer width equals: marks the classifier's tensors


def build(arch, class_dim, params=None):
    try:
        get_model_factory(arch)
    except KeyError as e:
        raise InferenceError(e.args[0]) from None
    try:
        return build_model(arch, class_dim=class_dim, **dict(params or {}))
    except TypeError as e:
        raise ArchParamsError(f"ARCHITECTURE.params do not fit {arch}: {e}", str(e)) from None


def head_axes(arch, params=None):
    """{state key: (axis, shape)} of the tensors whose size is the class count (the classifier's),
    found by building the model with a class count no layer width equals."""
    with paddle.no_grad():
        model = build(arch, SENTINEL_CLASSES, params)
    out = {}
    for key, tensor in model.state_dict().items():
        shape = list(tensor.shape)
        if SENTINEL_CLASSES in shape:
            out[key] = (shape.index(SENTINEL_CLASSES), shape)
    return out


def checkpoint_classes(state, heads):
    """(class count, key, shape) read from the classifier tensors of ``state``, or None when the
    file has no tensor of the classifier's name and layout (fit_state_dict then reports it)."""
    found = []
    for key, (axis, shape) in heads.items():
        if key not in state:
            continue
        got = list(np.shape(state[key]))
        if len(got) == len(shape) and all(g == s for i, (g, s) in enumerate(zip(got, shape))
                                          if i != axis):
            found.append((got[axis], key, got))
    if not found:
        return None
    counts = {n for n, _, _ in found}
    if len(counts) > 1:
        raise ckpt.CheckpointError("classifier tensors disagree on the class count: " + ", ".join(
            f"{k} {s}" for _, k, s in found))
    best = max(found, key=lambda f: len(f[2]))          # the weight rather than the bias
    return int(best[0]), best[1], best[2]


def load_model_for_export(arch, weights, class_dim=None, params=None, class_source="--class_dim"):
    """Build ``arch`` with the checkpoint's class count and load ``weights`` strictly.

    ``class_dim`` (from the recipe or the command line) must agree with the checkpoint; when it
    is None the checkpoint decides. Returns (model in eval mode, class count). A distillation
    checkpoint (``teacher.*``, ``student.*``) gives its student: ``arch`` is the student's."""
    state = student_state(ckpt.load_params_file(weights))
    file = weights if weights.endswith(".safetensors") else ckpt.strip_suffix(weights) + ".pdparams"
    heads = head_axes(arch, params)
    found = checkpoint_classes(state, heads)
    if found is not None:
        n, key, shape = found
        if class_dim is not None and class_dim != n:
            # weights of another architecture are the real problem: name their keys first
            ckpt.fit_state_dict(build(arch, n, params), state, file)
            raise ckpt.CheckpointError(
                f"{file} has {n} classes ({key} {shape}) but {class_source} is {class_dim}; "
                f"set {class_source}={n} (or export the checkpoint that was trained with "
                f"{class_dim} classes)")
        class_dim = n
    elif class_dim is None:
        # no classifier tensor in the file: fit_state_dict below names the missing keys
        class_dim = 1000
    model = build(arch, class_dim, params)
    usable, _ = ckpt.fit_state_dict(model, state, file)
    model.set_state_dict(usable)
    model.eval()
    return model, class_dim

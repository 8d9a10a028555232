"""Fine-tuning: find the classifier, load pretrained weights into a model with another class
count, scale or freeze the pretrained layers (``lrp``), freeze BatchNorm (``freeze_bn``).

The engine never knows a model by name. The classifier is found generically:

1. a model may say it itself with a ``classifier_keys()`` method (state-dict keys);
2. else it is the last-registered ``Linear`` or 1x1 ``Conv2D`` sublayer whose output size equals
   the class count (every family here ends in one: ``fc``, ``classifier.1``, ``output.1``,
   ReXNet-lite's ``output.4``; a 1x1 conv that happens to have as many channels, such as
   ReXNet-lite's 1024-channel conv before its classifier, is registered before it).

Only the classifier's keys may be missing from, or differ in shape in, a pretrained file; every
other key must match, or loading fails naming each bad key.
"""
import numpy as np
import paddle
import paddle.nn as nn

from ..utils import checkpoint as ckpt
from ..utils.logger import get_logger

_BN_TYPES = (nn.layer.norm._BatchNormBase, nn.BatchNorm)


class FinetuneError(ckpt.CheckpointError):
    """The model's classifier cannot be found, or pretrained weights do not fit."""


# ---------------------------------------------------------------------------- classifier
def _out_size(layer):
    """Output size of a Linear ([in, out] weight) or a 1x1 Conv2D ([out, in, 1, 1]), else None."""
    w = getattr(layer, "weight", None)
    if w is None:
        return None
    if isinstance(layer, nn.Linear):
        return int(w.shape[1])
    if isinstance(layer, nn.Conv2D) and list(w.shape[2:]) == [1, 1]:
        return int(w.shape[0])
    return None


def classifier_layer(model, class_dim=None):
    """(name, layer) of the classifier: the last-registered Linear / 1x1 Conv2D whose output
    size is ``class_dim`` (any size when None)."""
    found = None
    for name, layer in model.named_sublayers(include_self=True):
        size = _out_size(layer)
        if size is not None and (class_dim is None or size == class_dim):
            found = (name, layer)
    if found is None:
        raise FinetuneError(
            f"{type(model).__name__}: no Linear or 1x1 Conv2D layer with {class_dim} outputs, so "
            f"the classifier cannot be found; give the model a classifier_keys() method that "
            f"returns its classifier's state-dict keys")
    return found


def classifier_keys(model, class_dim=None):
    """State-dict keys of the classifier (its weight and bias)."""
    hook = getattr(model, "classifier_keys", None)
    if callable(hook):
        keys = list(hook())
    else:
        name, layer = classifier_layer(model, class_dim)
        keys = [f"{name}.{p}" if name else p
                for p, _ in layer.named_parameters(include_sublayers=False)]
    missing = [k for k in keys if k not in model.state_dict()]
    if missing:
        raise FinetuneError(f"{type(model).__name__}: classifier keys {missing} are not in its "
                            f"state dict")
    return keys


def load_pretrained_for_finetune(model, path, class_dim=None, logger=None):
    """Load ``path`` into ``model``; only the classifier may be missing or have another shape
    (then it keeps its fresh initialisation, and the log says which keys and why). Returns
    {'reinitialised': [(key, reason)], 'loaded': n, 'head_keys': [...]}."""
    logger = logger or get_logger()
    head = classifier_keys(model, class_dim)
    state = ckpt.load_params_file(path)
    usable, report = ckpt.fit_state_dict(model, state, ckpt.strip_suffix(path) + ".pdparams",
                                         skip_mismatched_head=True, head_keys=head)
    own = model.state_dict()
    usable.update({k: own[k] for k, _ in report["reinitialised"]})   # keep the fresh classifier
    model.set_state_dict(usable)
    reinit = report["reinitialised"]
    if reinit:
        logger.info(f"fine-tuning: classifier re-initialised, {len(reinit)} key(s) not loaded "
                    f"from {path}: " + "; ".join(f"{k} ({why})" for k, why in reinit))
    else:
        logger.info(f"fine-tuning: classifier ({', '.join(head)}) loaded from {path} too "
                    f"(same shape)")
    return {"reinitialised": reinit, "loaded": len(usable) - len(reinit), "head_keys": head}


# ---------------------------------------------------------------------------- lrp / freeze_bn
def bn_layers(model):
    return [m for m in model.sublayers(include_self=True) if isinstance(m, _BN_TYPES)]


def apply_freeze_bn(model):
    """Freeze BatchNorm affine parameters and put BN layers in eval mode (their running
    statistics then stay as loaded). Call ``set_bn_eval`` again after every ``model.train()``."""
    layers = bn_layers(model)
    for m in layers:
        for p in m.parameters(include_sublayers=False):
            if not p.stop_gradient:
                p.stop_gradient = True
    set_bn_eval(model)
    return len(layers)


def set_bn_eval(model):
    for m in bn_layers(model):
        m.eval()


def apply_lrp(model, lrp, head_keys):
    """Scale the learning rate of every trainable parameter except the classifier's by ``lrp``
    (Paddle's per-parameter ``optimize_attr['learning_rate']``); ``lrp == 0`` freezes them
    (``stop_gradient``: no gradient, no update, no weight decay, no optimizer state).
    Returns (number of parameters scaled or frozen, number left at the full rate)."""
    head = set(head_keys)
    scaled = full = 0
    for name, p in model.named_parameters():
        if p.stop_gradient:
            continue
        if name in head:
            full += 1
            continue
        scaled += 1
        if lrp == 0:
            p.stop_gradient = True
        else:
            attr = p.optimize_attr if getattr(p, "optimize_attr", None) is not None else {}
            attr["learning_rate"] = float(attr.get("learning_rate", 1.0)) * lrp
            p.optimize_attr = attr
    return scaled, full


def setup_finetune(model, cfg, logger=None):
    """Apply ``lrp`` and ``freeze_bn`` from a recipe; returns the classifier keys (None when
    lrp is 1)."""
    logger = logger or get_logger()
    head = None
    if cfg.get("freeze_bn"):
        n = apply_freeze_bn(model)
        logger.info(f"freeze_bn: {n} BatchNorm layers in eval mode, their scale/shift frozen")
    lrp = cfg.get("lrp", 1.0)
    if lrp != 1.0:
        head = classifier_keys(model, cfg["classes_num"])
        scaled, _ = apply_lrp(model, lrp, head)
        what = "frozen" if lrp == 0 else f"at {lrp:g} x lr"
        logger.info(f"lrp: {scaled} pretrained parameter tensors {what}; classifier "
                    f"({', '.join(head)}) at the full lr")
    n_train = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    if n_train == 0:
        raise FinetuneError("no trainable parameters left (lrp: 0 with freeze_bn and a "
                            "classifier that was frozen too?)")
    return head

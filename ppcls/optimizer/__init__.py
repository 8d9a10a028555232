"""Optimizers and LR schedules from the LEARNING_RATE / OPTIMIZER sections of a recipe."""
import difflib

import paddle

from ..utils.config import check_params
from .lr import SCHEDULES

# Parameters of the schedule that come from the run, not from the recipe.
_RUN_ARGS = ("self", "steps_per_epoch", "epochs")

OPTIMIZERS = {
    "Momentum": paddle.optimizer.Momentum,
    "SGD": paddle.optimizer.SGD,
    "AdamW": paddle.optimizer.AdamW,
}
_OPT_RUN_ARGS = ("self", "learning_rate", "parameters", "weight_decay", "grad_clip", "name",
                 "multi_precision", "rescale_grad", "apply_decay_param_fun", "lr_ratio",
                 "use_multi_tensor", "amsgrad")


def _lookup(table, name, where, what):
    if name not in table:
        hint = difflib.get_close_matches(name, table, 1)
        raise where.child("function").error(
            f"unknown {what} {name!r}" + (f"; did you mean {hint[0]!r}?" if hint
                                           else f"; available: {', '.join(table)}"))
    return table[name]


def check_lr_config(cfg, where):
    cls = _lookup(SCHEDULES, cfg["function"], where, "LR schedule")
    check_params(cls.__init__, cfg["params"], where.child("params"), skip=_RUN_ARGS)
    try:
        cls(steps_per_epoch=1, epochs=max(1, int(cfg["params"].get("warmup_epoch", 0)) + 1),
            **cfg["params"])
    except (ValueError, TypeError) as e:
        raise where.child("params").error(str(e)) from None


def check_optimizer_config(cfg, where):
    cls = _lookup(OPTIMIZERS, cfg["function"], where, "optimizer")
    check_params(cls.__init__, cfg["params"], where.child("params"), skip=_OPT_RUN_ARGS)
    reg = cfg["regularizer"] or {}
    if reg:
        unknown = set(reg) - {"function", "factor"}
        if unknown:
            raise where.child(f"regularizer.{sorted(unknown)[0]}").error(
                "unknown key; a regularizer has `function: L2` and `factor`")
        if reg.get("function") != "L2":
            raise where.child("regularizer.function").error(
                f"only L2 is supported, got {reg.get('function')!r}")
        factor = reg.get("factor")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 0:
            raise where.child("regularizer.factor").error(f"expected a number >= 0, got {factor!r}")


def build_lr_scheduler(cfg, steps_per_epoch, epochs):
    return SCHEDULES[cfg["function"]](steps_per_epoch=steps_per_epoch, epochs=epochs,
                                      **cfg["params"])


def build_optimizer(cfg, lr_scheduler, parameters):
    params = dict(cfg["params"])
    reg = cfg["regularizer"] or {}
    if reg and cfg["function"] != "AdamW":
        params["weight_decay"] = paddle.regularizer.L2Decay(float(reg["factor"]))
    elif reg:
        params["weight_decay"] = float(reg["factor"])   # AdamW: decoupled decay
    return OPTIMIZERS[cfg["function"]](learning_rate=lr_scheduler, parameters=parameters, **params)

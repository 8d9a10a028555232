"""Automatic mixed precision (``use_amp``, ``amp_level``).

* GPU: float16 with dynamic loss scaling (``paddle.amp.GradScaler``); bfloat16 (no scaling
  needed) on GPUs without float16 support.
* O1: ``paddle.amp.auto_cast`` runs white-listed ops (conv, matmul) in low precision, the
  weights stay float32. O2: ``paddle.amp.decorate`` stores the weights in low precision and the
  optimizer keeps float32 master weights (``master_weight=True``); checkpoints are written in
  float32 (``save_dtype``), BatchNorm stays float32.
* CPU: Paddle 3.3 does not run mixed precision on CPU (``auto_cast`` and ``GradScaler`` switch
  themselves off outside GPU/XPU places, and conv2d has no bfloat16 CPU kernel). A short probe
  checks this at start; when it fails the run warns once and trains in float32.

The scaler state (scale, good/bad step counters) is saved in ``ppcls.state.json`` under
``amp`` and restored on resume.
"""
import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import paddle

from ..utils.logger import get_logger


@dataclass
class AmpPlan:
    enabled: bool = False
    dtype: str = "float32"
    level: str = "O1"
    use_scaler: bool = False
    reason: str = ""


def probe_cpu_bfloat16():
    """(ok, why): does ``auto_cast(dtype='bfloat16')`` really compute a conv in bfloat16 on
    CPU, with non-zero float32 gradients?"""
    from paddle.amp.auto_cast import amp_global_state
    saved = amp_global_state().amp_dtype
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conv = paddle.nn.Conv2D(3, 4, 3)
            x = paddle.rand([2, 3, 8, 8])
            with paddle.amp.auto_cast(enable=True, level="O1", dtype="bfloat16"):
                y = conv(x)
            if y.dtype != paddle.bfloat16:
                return False, (f"paddle.amp.auto_cast(dtype='bfloat16') leaves CPU ops in "
                               f"{str(y.dtype).replace('paddle.', '')} (Paddle "
                               f"{paddle.__version__} mixes precision on GPU/XPU only)")
            y.astype("float32").mean().backward()
            g = conv.weight.grad
            if g is None or float(g.astype("float32").abs().sum()) == 0.0:
                return False, "bfloat16 conv on CPU gives no gradient"
            return True, ""
    except Exception as e:  # noqa: BLE001 - missing kernels raise various errors
        return False, f"bfloat16 on CPU fails ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
    finally:
        amp_global_state().amp_dtype = saved


def resolve_amp(use_amp, level, on_gpu):
    """What ``use_amp`` can do on this device: an AmpPlan (disabled with a reason if nothing)."""
    if not use_amp:
        return AmpPlan()
    if on_gpu:
        if paddle.amp.is_float16_supported():
            return AmpPlan(True, "float16", level, True)
        if paddle.amp.is_bfloat16_supported():
            return AmpPlan(True, "bfloat16", level, False)
        return AmpPlan(reason="this GPU supports neither float16 nor bfloat16 in Paddle")
    ok, why = probe_cpu_bfloat16()
    if ok:
        return AmpPlan(True, "bfloat16", level, False)
    return AmpPlan(reason=why)


def _as_bool(flag):
    if flag is None:
        return False
    if isinstance(flag, paddle.Tensor):
        return bool(np.asarray(flag.numpy()).any())
    return bool(flag)


class GradScaler(paddle.amp.GradScaler):
    """``paddle.amp.GradScaler`` with the scale update done without ``float()`` of its
    one-element scale tensor: in Paddle 3.3.1 with NumPy >= 2.4, ``GradScaler._update``
    raises TypeError on the first overflow (it formats ``float(self._scale)`` for a message),
    which would stop float16 training at its first skipped step. Same rule otherwise: x
    ``decr_ratio`` after ``decr_every_n_nan_or_inf`` overflows, x ``incr_ratio`` after
    ``incr_every_n_steps`` finite steps in a row."""

    def _update(self):
        if not self._enable:
            return
        if _as_bool(self._cache_found_inf):
            self._incr_count = 0
            self._decr_count += 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                self._scale = self._scale * self._decr_ratio
                self._decr_count = 0
        else:
            self._decr_count = 0
            self._incr_count += 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale = self._scale * self._incr_ratio
                self._incr_count = 0


def cast_state_like(model, state):
    """``state`` with every floating value in the dtype of the model's own tensor."""
    live = dict(model.named_parameters())
    live.update({k: v for k, v in model.named_buffers() if k not in live})
    out = {}
    for key, value in state.items():
        target = live.get(key)
        if target is not None and paddle.is_floating_point(target):
            tensor = value if isinstance(value, paddle.Tensor) else paddle.to_tensor(np.asarray(value))
            if tensor.dtype != target.dtype:
                value = tensor.astype(target.dtype)
        out[key] = value
    return out


def build_scaler():
    """Dynamic loss scaling with Paddle's defaults (start 2^16, x2 after 2,000 finite steps,
    x0.5 on every overflow, which skips that step)."""
    return GradScaler(enable=True)


class Amp:
    """Autocast, loss scaling and the optimizer step for one run (a no-op when disabled)."""

    def __init__(self, plan):
        self.plan = plan
        self.scaler = build_scaler() if plan.enabled and plan.use_scaler else None
        self.overflow_steps = 0

    @classmethod
    def from_config(cls, cfg, on_gpu, logger=None):
        plan = resolve_amp(cfg.get("use_amp", False), cfg.get("amp_level", "O1"), on_gpu)
        logger = logger or get_logger()
        if cfg.get("use_amp") and not plan.enabled:
            logger.warning(f"use_amp: mixed precision is not available here ({plan.reason}); "
                           f"training in float32")
        elif plan.enabled:
            logger.info(f"use_amp: {plan.level} {plan.dtype}"
                        + (", dynamic loss scaling" if plan.use_scaler else "")
                        + (", float32 master weights" if plan.level == "O2" else ""))
        return cls(plan)

    @property
    def enabled(self):
        return self.plan.enabled

    def decorate(self, model, optimizer):
        """O2: low-precision weights with float32 master weights (checkpoints in float32)."""
        if not self.enabled or self.plan.level != "O2":
            return model, optimizer
        return paddle.amp.decorate(models=model, optimizers=optimizer, level="O2",
                                   dtype=self.plan.dtype, master_weight=True,
                                   save_dtype="float32")

    def fit_state(self, model, state):
        """A float32 checkpoint for this run's model: under O2 its weights are low precision,
        and ``set_value`` refuses another dtype."""
        if not self.enabled or self.plan.level != "O2":
            return state
        return cast_state_like(model, state)

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level=self.plan.level, dtype=self.plan.dtype)

    def scale(self, loss):
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def step(self, optimizer):
        """Unscale, skip on inf/nan gradients (and lower the scale), step. True if stepped."""
        if self.scaler is None:
            optimizer.step()
            return True
        self.scaler.step(optimizer)
        self.scaler.update()
        skipped = _as_bool(getattr(self.scaler, "_cache_found_inf", False))
        self.overflow_steps += int(skipped)
        return not skipped

    def eval_forward(self, forward):
        """Evaluation: weights in low precision (O2) need autocast; float32 logits out."""
        if not self.enabled:
            return forward

        def fn(images):
            with self.autocast():
                out = forward(images)
            return out if out.dtype == paddle.float32 else out.astype("float32")
        return fn

    # -- checkpoint state (JSON, in ppcls.state.json) --------------------------------------
    def state_dict(self):
        if not self.enabled:
            return None
        state = {"dtype": self.plan.dtype, "level": self.plan.level}
        if self.scaler is not None:
            s = self.scaler.state_dict()
            if s:
                state["scaler"] = {k: (float(np.asarray(v).reshape(-1)[0]) if k == "scale"
                                       else (v.item() if hasattr(v, "item") else v))
                                   for k, v in s.items()}
        return state

    def load_state_dict(self, state, logger=None):
        logger = logger or get_logger()
        if not state or self.scaler is None:
            return
        saved = state.get("scaler")
        if not saved:
            logger.warning("the checkpoint has no loss-scaling state; starting the scale afresh")
            return
        if state.get("dtype") != self.plan.dtype:
            logger.warning(f"the checkpoint trained in {state.get('dtype')}, this run in "
                           f"{self.plan.dtype}: loss scale starts afresh")
            return
        s = dict(saved)
        s["scale"] = np.array([s["scale"]], dtype=np.float32)
        self.scaler.load_state_dict(s)

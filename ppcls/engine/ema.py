"""Exponential moving average (EMA) of the weights, updated after every optimizer step.

The EMA lives in a second float32 copy of the model (``ema_model``), so it is evaluated and
saved like any model. Every floating-point state entry is averaged, trainable weights and
BatchNorm running statistics alike (in Paddle those are parameters too); integer entries are
copied. The decay warms up, ``d_t = min(decay, (1 + t) / (10 + t))`` for the t-th update, so a
short run is not dominated by the starting weights: it reaches the configured decay after
``(10 d - 1) / (1 - d)`` updates (89 for 0.9, 899 for 0.99, 8,999 for 0.999).

Checkpoints: ``ppcls_ema.pdparams`` next to the raw ``ppcls.pdparams``, and the update count
in ``ppcls.state.json`` (``ema_updates``), so a resumed run continues the same average.
"""
import paddle


class ModelEMA:
    def __init__(self, model, ema_model, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.model = ema_model
        self.model.eval()
        for p in self.model.parameters():
            p.stop_gradient = True
        src = _live_state(model)
        dst = _live_state(ema_model)
        if src.keys() != dst.keys():
            raise ValueError("the EMA copy and the model have different state keys")
        # a tensor the copy shares with the model (a distillation teacher) needs no average
        self._pairs = [(dst[k], src[k]) for k in src if dst[k] is not src[k]]
        self.copy_from_model()

    def copy_from_model(self):
        with paddle.no_grad():
            for e, p in self._pairs:
                paddle.assign(p.astype(e.dtype), e)

    def current_decay(self):
        t = self.updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    def update(self):
        d = self.current_decay()
        with paddle.no_grad():
            for e, p in self._pairs:
                if paddle.is_floating_point(e):
                    value = p if p.dtype == e.dtype else p.astype(e.dtype)
                    e.lerp_(value, 1.0 - d)          # e = d * e + (1 - d) * p
                else:
                    paddle.assign(p, e)
        self.updates += 1

    def state_dict(self):
        return self.model.state_dict()

    def set_state_dict(self, state, updates):
        self.model.set_state_dict(state)
        self.updates = int(updates)


def _live_state(model):
    """{name: the model's own tensor} (``state_dict()`` may return converted copies, e.g. after
    ``paddle.amp.decorate(save_dtype=...)``)."""
    out = dict(model.named_parameters())
    out.update({k: v for k, v in model.named_buffers() if k not in out})
    return out

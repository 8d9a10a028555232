"""Learning-rate schedules, stepped once per iteration.

Each schedule is a pure function of the global iteration, with optional linear warmup from 0
over ``warmup_epoch`` epochs (so the first logged lr is 0.000000), which makes the value at any
step easy to test and the scheduler state a single integer.
"""
import math

from paddle.optimizer.lr import LRScheduler


class IterLR(LRScheduler):
    """Base: ``value(iteration)``; ``last_epoch`` of Paddle's LRScheduler counts iterations."""

    def __init__(self, lr, steps_per_epoch, epochs, warmup_epoch=0):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if warmup_epoch < 0 or warmup_epoch > epochs:
            raise ValueError(f"warmup_epoch must be in [0, epochs={epochs}], got {warmup_epoch}")
        self.base_lr = float(lr)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.epochs = epochs
        self.warmup_steps = int(round(warmup_epoch * self.steps_per_epoch))
        self.total_steps = epochs * self.steps_per_epoch
        super().__init__(learning_rate=float(lr), last_epoch=-1)

    def value(self, it):
        if it < self.warmup_steps:
            return self.base_lr * it / self.warmup_steps
        return self.after_warmup(it)

    def after_warmup(self, it):
        raise NotImplementedError

    def get_lr(self):
        return self.value(max(0, self.last_epoch))


class Piecewise(IterLR):
    """lr times ``gamma`` at each epoch in ``decay_epochs`` (or the explicit ``values``)."""

    def __init__(self, lr, steps_per_epoch, epochs, decay_epochs, values=None, gamma=0.1,
                 warmup_epoch=0):
        if list(decay_epochs) != sorted(decay_epochs):
            raise ValueError(f"decay_epochs must be increasing, got {decay_epochs}")
        if values is not None and len(values) != len(decay_epochs) + 1:
            raise ValueError(f"values needs len(decay_epochs) + 1 = {len(decay_epochs) + 1} "
                             f"entries, got {len(values)}")
        self.decay_epochs = list(decay_epochs)
        self.values = list(values) if values is not None else \
            [lr * gamma ** i for i in range(len(decay_epochs) + 1)]
        super().__init__(self.values[0], steps_per_epoch, epochs, warmup_epoch)

    def after_warmup(self, it):
        epoch = it // self.steps_per_epoch
        return self.values[sum(epoch >= e for e in self.decay_epochs)]


class Cosine(IterLR):
    """Cosine from lr to ``end_lr`` over the iterations after warmup."""

    def __init__(self, lr, steps_per_epoch, epochs, warmup_epoch=0, end_lr=0.0):
        self.end_lr = end_lr
        super().__init__(lr, steps_per_epoch, epochs, warmup_epoch)

    def after_warmup(self, it):
        span = max(1, self.total_steps - self.warmup_steps)
        t = min(1.0, (it - self.warmup_steps) / span)
        return self.end_lr + (self.base_lr - self.end_lr) * 0.5 * (1 + math.cos(math.pi * t))


class Exponential(IterLR):
    """lr * gamma ** epoch (per epoch, e.g. MobileNetV2's 0.98 per epoch)."""

    def __init__(self, lr, steps_per_epoch, epochs, gamma, warmup_epoch=0):
        self.gamma = gamma
        super().__init__(lr, steps_per_epoch, epochs, warmup_epoch)

    def after_warmup(self, it):
        return self.base_lr * self.gamma ** (it // self.steps_per_epoch)


class Constant(IterLR):
    def __init__(self, lr, steps_per_epoch, epochs, warmup_epoch=0):
        super().__init__(lr, steps_per_epoch, epochs, warmup_epoch)

    def after_warmup(self, it):
        return self.base_lr


SCHEDULES = {cls.__name__: cls for cls in (Piecewise, Cosine, Exponential, Constant)}

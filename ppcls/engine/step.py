"""One optimizer step out of ``accum_steps`` micro-batches, with AMP and EMA.

Gradient accumulation keeps a recipe's global batch on fewer devices: each device runs
micro-batches of ``batch_size / world_size / accum_steps`` images, every micro-batch's loss is
divided by ``accum_steps`` before ``backward`` (gradients add up in ``.grad``), and the
optimizer steps once per ``accum_steps`` micro-batches with their mean gradient, as one step at
the full batch would. The LR schedule counts optimizer steps. Under DataParallel the
gradient all-reduce runs only on the last micro-batch of each step (``no_sync``).

A micro-batch whose loss is not finite (``nan_policy: skip``) is left out of its step; when
every micro-batch of a step was skipped the optimizer does not step, the schedule still does.
"""
import contextlib

from .amp import Amp, AmpPlan


class TrainStep:
    def __init__(self, optimizer, lr_sched, accum_steps=1, amp=None, ema=None):
        self.optimizer, self.lr_sched = optimizer, lr_sched
        self.accum_steps = int(accum_steps)
        self.amp = amp or Amp(AmpPlan())
        self.ema = ema
        self.micro = 0            # micro-batches seen in the current step
        self.contributed = 0      # ... of which had a finite loss and were backpropagated

    def last_micro(self):
        return self.micro + 1 == self.accum_steps

    def forward_context(self, model):
        """Autocast, and ``no_sync`` under DataParallel except on a step's last micro-batch."""
        stack = contextlib.ExitStack()
        if not self.last_micro() and hasattr(model, "no_sync"):
            stack.enter_context(model.no_sync())
        stack.enter_context(self.amp.autocast())
        return stack

    def backward(self, loss):
        """Accumulate ``loss``'s gradient; step when the group is complete. True if stepped."""
        scaled = loss / self.accum_steps if self.accum_steps > 1 else loss
        self.amp.scale(scaled).backward()
        self.contributed += 1
        return self._advance()

    def skip(self):
        """Leave this micro-batch out (its loss was not finite)."""
        return self._advance()

    def _advance(self):
        self.micro += 1
        if self.micro < self.accum_steps:
            return False
        stepped = False
        if self.contributed:
            stepped = self.amp.step(self.optimizer)
            if self.ema is not None:
                self.ema.update()
        self.optimizer.clear_grad()
        self.lr_sched.step()
        self.micro = self.contributed = 0
        return stepped

    def micro_batches_per_epoch(self, loader_len):
        """Micro-batches to run per epoch: whole optimizer steps only (the remainder would be a
        partial step, dropped like drop_last drops a partial batch)."""
        return (loader_len // self.accum_steps) * self.accum_steps

"""Remaining time of a training run, for the ``eta:`` at the end of the log lines.

From moving averages of what was measured in this process: the last ``window`` training steps
(each from the end of the previous step to the end of this one: loading, forward, backward,
update), the last 3 validations, and the last 5 epochs' remaining time (saving, metrics, the
barrier with the other ranks). Progress lines give the rest of the current epoch, its
validation included; END lines give the rest of the run. Before the first validation has been
measured its time counts as 0, so the first epoch's estimates are low by one validation each.
"""
import collections
import datetime
import time


def format_eta(seconds):
    """``1 day, 2:03:04``: Python's timedelta text, whole seconds."""
    return str(datetime.timedelta(seconds=max(0, round(seconds))))


def _mean(values):
    return sum(values) / len(values) if values else 0.0


class RunClock:
    def __init__(self, steps_per_epoch, epochs, validates, window=50, clock=time.monotonic):
        """``steps_per_epoch``: logged (micro-)steps per epoch; ``validates(epoch)``: whether
        that epoch ends with a validation."""
        self.steps_per_epoch, self.epochs, self.validates = steps_per_epoch, epochs, validates
        self.clock = clock
        self.steps = collections.deque(maxlen=window)
        self.valids = collections.deque(maxlen=3)
        self.others = collections.deque(maxlen=5)
        self.epoch_start = self.train_end = None
        self.valid_seconds = 0.0

    # ------------------------------------------------------------------ measurements
    def begin_epoch(self):
        self.epoch_start, self.train_end, self.valid_seconds = self.clock(), None, 0.0

    def step(self, seconds):
        self.steps.append(seconds)

    def train_done(self):
        self.train_end = self.clock()

    def valid_done(self, seconds):
        self.valid_seconds = seconds
        self.valids.append(seconds)

    def elapsed(self):
        """Seconds since the epoch began."""
        return self.clock() - self.epoch_start

    def end_epoch(self):
        """Returns the epoch's wall time (seconds)."""
        now = self.clock()
        total = now - self.epoch_start
        train = (self.train_end or now) - self.epoch_start
        self.others.append(max(0.0, total - train - self.valid_seconds))
        return total

    # ------------------------------------------------------------------ estimates
    def epoch_left(self, epoch, step):
        """Seconds until epoch ``epoch`` ends, after its step ``step`` (0-based)."""
        left = max(0, self.steps_per_epoch - step - 1) * _mean(self.steps)
        return left + (_mean(self.valids) if self.validates(epoch) else 0.0) + _mean(self.others)

    def run_left(self, epoch, validated):
        """Seconds until the run ends, once epoch ``epoch`` has trained (and, if
        ``validated``, validated)."""
        later = range(epoch + 1, self.epochs)
        valids = sum(1 for e in later if self.validates(e))
        if self.validates(epoch) and not validated:
            valids += 1
        return (len(later) * self.steps_per_epoch * _mean(self.steps)
                + valids * _mean(self.valids) + (len(later) + 1) * _mean(self.others))

    def epoch_suffix(self, epoch, step):
        return f", eta: {format_eta(self.epoch_left(epoch, step))}"

    def run_suffix(self, epoch, validated):
        return f", eta: {format_eta(self.run_left(epoch, validated))}"

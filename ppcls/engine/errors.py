"""Errors of a training or evaluation run."""
from ..utils.errors import UserError


class TrainingError(UserError, RuntimeError):
    """A run that cannot go on (NaN loss, too many bad images, unwritable output)."""

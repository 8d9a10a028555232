"""Logging in the PaddleClas release/2.0 format: ``2021-04-09 11:43:30 INFO: message``."""
import logging
import sys

_LOGGER = logging.getLogger("ppcls")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record is emitted, not to the stream it was
    when the logger was set up: a caller that swaps stdout (a test's capture, a notebook, a
    redirect in the Python API) still gets the lines, and a stream closed since is never used."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):        # logging.StreamHandler.__init__ assigns it
        pass


def setup_logger(rank=0, log_file=None):
    """Log to stdout (every rank: paddle.distributed.launch writes each to its workerlog.N)."""
    _LOGGER.handlers.clear()
    _LOGGER.setLevel(logging.INFO)
    _LOGGER.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handler = _StdoutHandler()
    handler.setFormatter(fmt)
    _LOGGER.addHandler(handler)
    if log_file:
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        _LOGGER.addHandler(fh)
    return _LOGGER


def get_logger():
    return _LOGGER

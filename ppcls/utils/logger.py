"""Logging in the PaddleClas release/2.0 format: ``2021-04-09 11:43:30 INFO: message``."""
import logging
import sys

_LOGGER = logging.getLogger("ppcls")


def setup_logger(rank=0, log_file=None):
    """Log to stdout (every rank: paddle.distributed.launch writes each to its workerlog.N)."""
    _LOGGER.handlers.clear()
    _LOGGER.setLevel(logging.INFO)
    _LOGGER.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(fmt)
    _LOGGER.addHandler(handler)
    if log_file:
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        _LOGGER.addHandler(fh)
    return _LOGGER


def get_logger():
    return _LOGGER

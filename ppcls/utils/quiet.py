"""Paddle's own noise off, ours kept: call ``quiet_paddle()`` before ``import paddle``.

What Paddle 3.3 prints that a user can do nothing about, and how each is silenced:

* ``UserWarning: No ccache found ...`` (paddle.utils.cpp_extension, at import: a C++ build cache
  for custom operators, which we never compile) and ``UserWarning: When training, we now always
  track global mean and variance.`` (paddle.nn.BatchNorm, every ``model.train()``): one warning
  filter each, matching Paddle's exact wording, so no other warning is touched.
* glog lines of Paddle's C++ core (``I... tcp_store.cc] create libuv server``, ``W...
  eager_utils.cc] Paddle static graph(PIR) not support input out tensor for now!!!!!`` at each
  static export): ``GLOG_minloglevel=2`` keeps glog's errors only. glog reads it when the library
  loads, hence before the import; a value the user set is kept.
* the ``Modified FLAGS detected`` banner that ``init_parallel_env`` writes on every worker for the
  flag Paddle itself sets at import (``FLAGS_enable_pir_in_executor``): ``quiet_parallel_banner``.

``PPCLS_VERBOSE=1`` keeps all of it. Our own warnings and errors (the ``ppcls`` logger, ``error:``
lines, RuntimeWarnings we raise) go through none of these filters. Imports no paddle.
"""
import os
import re
import warnings

PADDLE_WARNINGS = (
    "No ccache found",
    "When training, we now always track global mean and variance",
)


def verbose(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get("PPCLS_VERBOSE", "") not in ("", "0")


def quiet_paddle(environ=None):
    """Silence Paddle's noise (see the module docstring) unless PPCLS_VERBOSE=1. Call before
    paddle is imported; the warning filters also work after. Returns whether it did."""
    environ = os.environ if environ is None else environ
    if verbose(environ):
        return False
    environ.setdefault("GLOG_minloglevel", "2")
    for text in PADDLE_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(text), category=UserWarning)
    return True


def quiet_parallel_banner():
    """``paddle.distributed.init_parallel_env`` prints the flags that differ from their compiled
    default, which in Paddle 3.3 is always ``FLAGS_enable_pir_in_executor`` (set by Paddle's own
    import), to every worker's stderr. Replace that printer with a no-op (unless verbose); if a
    later Paddle renames it, nothing happens."""
    if verbose():
        return
    try:
        from paddle.distributed import parallel
    except ImportError:
        return
    if hasattr(parallel, "_print_modified_flags"):
        parallel._print_modified_flags = lambda flags: None

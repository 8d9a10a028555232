"""``python -m ppcls.analysis.benchmark --worker SPEC``: a benchmark child process (internal)."""
import sys

from .children import _worker

if len(sys.argv) == 3 and sys.argv[1] == "--worker":
    _worker(sys.argv[2])
else:
    sys.exit("usage: python tools/benchmark.py ... (this module's --worker mode is internal)")

"""Benchmark cases (mode, backend, threads, processes), their parsing from ``--compare``, timing
results and the report table."""
import re
import statistics
from dataclasses import dataclass, field

from ...utils.errors import UserError

MODES = ("train", "eval", "infer")
FORWARD_BACKENDS = ("dygraph", "static", "paddle_inference", "onnxruntime")
DEFAULT_BACKEND = {"train": "dygraph", "eval": "static", "infer": "paddle_inference"}
BACKEND_NAMES = {"dygraph": "dygraph", "static": "engine fast eval (oneDNN predictor)",
                 "paddle_inference": "Paddle Inference + oneDNN", "onnxruntime": "ONNX Runtime"}


class BenchmarkError(UserError, ValueError):
    """A request the benchmark cannot run (unknown model, missing backend, bad case)."""


DEFAULT_THREADS = 0          # Case.threads value of a Paddle-defaults case
# What the child of a Paddle-defaults case must not inherit: our MKL switch and thread settings.
NOT_PADDLE_DEFAULTS = ("MKL_DEBUG_CPU_TYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FLAGS_use_mkldnn")


@dataclass(frozen=True)
class Case:
    mode: str
    backend: str
    threads: int             # DEFAULT_THREADS: a child process with Paddle's defaults
    procs: int = 1           # > 1: data-parallel training in this many processes (launch, gloo)

    @property
    def paddle_defaults(self):
        return self.threads == DEFAULT_THREADS

    @property
    def threads_name(self):
        """'default', 'T' or 'TxP' (P processes of T threads each)."""
        if self.paddle_defaults:
            return "default"
        return f"{self.threads}x{self.procs}" if self.procs > 1 else str(self.threads)

    @property
    def label(self):
        return f"{self.mode}:{self.backend}:{self.threads_name}"


def check_case(case):
    if case.mode not in MODES:
        raise BenchmarkError(f"mode must be one of {', '.join(MODES)}, got {case.mode!r}")
    if case.mode == "train" and case.backend != "dygraph":
        raise BenchmarkError(f"{case.label}: training runs in dygraph only (backend dygraph); "
                             f"static training with oneDNN computes no gradients in Paddle 3.3")
    if case.backend not in FORWARD_BACKENDS:
        raise BenchmarkError(f"{case.label}: backend must be one of {', '.join(FORWARD_BACKENDS)}")
    if case.paddle_defaults and case.backend != "dygraph":
        raise BenchmarkError(f"{case.label}: 'default' (Paddle's defaults) is a dygraph baseline; "
                             f"give {case.backend} a thread count")
    if case.threads < 0:
        raise BenchmarkError(f"{case.label}: threads must be >= 1")
    if case.procs < 1 or (case.procs > 1 and (case.mode != "train" or case.paddle_defaults)):
        raise BenchmarkError(f"{case.label}: several processes (TxP) are for training only "
                             f"(data parallel, as paddle.distributed.launch runs tools/train.py)")
    if case.backend == "onnxruntime":
        reason = onnxruntime_missing()
        if reason:
            raise BenchmarkError(f"{case.label}: {reason}")
    return case


def parse_cases(spec, mode, backend, threads):
    """Cases from ``--compare``: '' or 'default' -> the standard set for ``mode``; 'all' -> every
    path; else comma-separated MODE:BACKEND:THREADS items (THREADS may be N, meaning
    ``threads``, ``default``, Paddle's defaults in a child process, or TxP, P data-parallel
    training processes of T threads; BACKEND and THREADS may be left out). The standard sets
    start with the Paddle-defaults baseline of their mode."""
    spec = (spec or "default").strip()
    if spec in ("default", "all"):
        if spec == "all":
            modes = MODES
        else:
            modes = (mode,)
        cases = []
        for m in modes:
            if m == "train":
                cases += [Case("train", "dygraph", DEFAULT_THREADS), Case("train", "dygraph", 1),
                          Case("train", "dygraph", threads)]
                if threads > 1:          # one single-threaded process per core
                    cases.append(Case("train", "dygraph", 1, threads))
            elif m == "eval":
                cases += [Case("eval", "dygraph", DEFAULT_THREADS), Case("eval", "dygraph", threads),
                          Case("eval", "static", threads)]
            else:
                cases += [Case("infer", "paddle_inference", threads)]
                if not onnxruntime_missing():
                    cases.append(Case("infer", "onnxruntime", threads))
        if threads == 1:       # 1 vs 1 thread says nothing: keep one of each
            cases = list(dict.fromkeys(cases))
        return [check_case(c) for c in cases]
    cases = []
    for item in spec.split(","):
        parts = [p.strip() for p in item.strip().split(":")]
        if not parts[0]:
            continue
        if len(parts) > 3:
            raise BenchmarkError(f"--compare item {item!r}: expected MODE[:BACKEND[:THREADS]]")
        m = parts[0]
        b = parts[1] if len(parts) > 1 and parts[1] else (backend if m == mode and backend
                                                           else DEFAULT_BACKEND.get(m, ""))
        t = parts[2] if len(parts) > 2 and parts[2] else "N"
        procs = 1
        tp = re.fullmatch(r"(\d+|n)x(\d+|n)", t.lower())
        if tp:
            t, procs = tp.group(1), (threads if tp.group(2) == "n" else int(tp.group(2)))
            if procs < 1:
                raise BenchmarkError(f"--compare item {item!r}: TxP needs P >= 1 processes")
        if t.upper() == "N":
            t = threads
        elif t.lower() == "default":
            t = DEFAULT_THREADS
        elif not t.isdigit() or int(t) < 1:
            raise BenchmarkError(f"--compare item {item!r}: THREADS must be a number >= 1, N, "
                                 f"TxP or default")
        cases.append(check_case(Case(m, b, int(t), procs)))
    if not cases:
        raise BenchmarkError(f"--compare {spec!r} names no case")
    return cases


def onnxruntime_missing():
    """None when ONNX Runtime and paddle2onnx can be imported, else the reason and the fix."""
    missing = []
    for module in ("onnxruntime", "paddle2onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return (f"{' and '.join(missing)} not installed; `pip install paddle2onnx onnxruntime` "
                f"to benchmark ONNX Runtime")
    return None


@dataclass
class Result:
    case: Case
    times: list = field(default_factory=list)
    batch: int = 0
    gflops_per_image: float = 0.0
    note: str = ""

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def ips(self):
        return self.batch / self.median

    @property
    def ips_range(self):
        return self.batch / max(self.times), self.batch / min(self.times)

    @property
    def gflops(self):
        return self.ips * self.gflops_per_image

    def as_dict(self, peak=None):
        d = {"mode": self.case.mode, "backend": self.case.backend,
             "threads": "default" if self.case.paddle_defaults else self.case.threads,
             "procs": self.case.procs,
             "batch_size": self.batch, "iters": len(self.times), "ips": round(self.ips, 4),
             "ips_min": round(self.ips_range[0], 4), "ips_max": round(self.ips_range[1], 4),
             "median_s": round(self.median, 5), "gflops_per_image": round(self.gflops_per_image, 4),
             "gflops": round(self.gflops, 3)}
        if peak:
            d["peak_fraction"] = round(self.gflops / peak, 4)
        if self.note:
            d["note"] = self.note
        return d


def format_table(results, peak=None):
    """One row per case; ``ratio`` is images/s over the first row of the same mode."""
    head = (f"{'mode':<6}{'backend':<18}{'threads':>7}{'img/s':>9} {'(min..max)':>16}"
            f"{'GFLOPs/img':>12}{'GFLOP/s':>9}{'%peak':>7}{'ratio':>7}")
    lines = [head]
    base = {}
    for r in results:
        base.setdefault(r.case.mode, r.ips)
    for r in results:
        lo, hi = r.ips_range
        frac = f"{100 * r.gflops / peak:6.1f}%" if peak else f"{'-':>7}"
        lines.append(f"{r.case.mode:<6}{r.case.backend:<18}{r.case.threads_name:>7}{r.ips:>9.2f}"
                     f" {f'({lo:.2f}..{hi:.2f})':>16}{r.gflops_per_image:>12.2f}{r.gflops:>9.1f}"
                     f"{frac}{r.ips / base[r.case.mode]:>6.2f}x" + (f"  [{r.note}]" if r.note else ""))
    return "\n".join(lines)

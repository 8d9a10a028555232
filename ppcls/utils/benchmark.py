"""Speed of the training, evaluation and inference paths, in images/s and in GFLOP/s against
the machine's measured SGEMM peak (``tools/benchmark.py`` is the command line).

A *case* is (mode, backend, threads); threads ``default`` runs the case in a fresh child
process with Paddle's own defaults (none of ppcls.utils.cpu_env's switches, no thread setting:
what ``import paddle`` gives), the baseline the speed targets are stated against:

  train  dygraph           the engine's training step (ppcls.engine.step.TrainStep: forward,
                           cross entropy with the recipe's label smoothing, backward, the
                           recipe's optimizer and LR schedule), synthetic batches
  eval   dygraph           model.eval() under no_grad, as the engine without use_static_eval
  eval   static            the engine's fast evaluation (ppcls.engine.static_eval.PredictorForward:
                           current weights exported, Paddle Inference + oneDNN)
  infer  paddle_inference  an exported program run by a Paddle Inference predictor with oneDNN
                           (as tools/infer.py deploys it), numpy in and out
  infer  onnxruntime       the same program converted by paddle2onnx, run by ONNX Runtime

Every forward backend also runs under ``eval`` or ``infer``: the mode only names the row.
FLOPs per image are 2 x MACs (ppcls.utils.flops.count_macs) for a forward pass and 3x that for a
training step (forward + backward for activations and weights). Several cases run interleaved
(one timed iteration of each in turn, a ``default`` case by a message to its child process), so
a change in machine load hits them alike and their ratio stays meaningful; each case is timed
after its own warm-up iterations.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

MODES = ("train", "eval", "infer")
FORWARD_BACKENDS = ("dygraph", "static", "paddle_inference", "onnxruntime")
DEFAULT_BACKEND = {"train": "dygraph", "eval": "static", "infer": "paddle_inference"}
BACKEND_NAMES = {"dygraph": "dygraph", "static": "engine fast eval (oneDNN predictor)",
                 "paddle_inference": "Paddle Inference + oneDNN", "onnxruntime": "ONNX Runtime"}


class BenchmarkError(ValueError):
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


# ----------------------------------------------------------------------------- machine
def sgemm_peak(threads, n=2048, repeats=5):
    """Best float32 n x n x n matmul rate (GFLOP/s) at ``threads`` threads, with NumPy's BLAS
    and with Paddle's (MKL): {'numpy': ..., 'paddle': ..., 'peak': max}. A few seconds."""
    import paddle
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return flops / min(times) / 1e9

    result = {}
    try:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads, user_api="blas"):
            result["numpy"] = best(lambda: a @ b)
    except ImportError:       # NumPy's own thread default (all cores)
        result["numpy"] = best(lambda: a @ b)
    from ..engine.env import set_cpu_threads
    set_cpu_threads(threads)
    pa, pb = paddle.to_tensor(a), paddle.to_tensor(b)
    result["paddle"] = best(lambda: paddle.matmul(pa, pb).numpy())
    result["peak"] = max(result["numpy"], result["paddle"])
    result["threads"], result["n"] = threads, n
    return result


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def load_average():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return (float("nan"),) * 3


# ----------------------------------------------------------------------------- runners
def recipe_for(arch):
    """The recipe of ``arch`` (configs/*/ARCH.yaml) as a loaded config, or None."""
    from .config import load_config
    from .flops import REPO_ROOT, find_config
    path = find_config(arch)
    if path is None:
        return None
    return load_config(os.path.join(REPO_ROOT, path), [])


def check_arch(arch):
    from ..modeling import list_models
    names = list_models()
    if arch not in names:
        import difflib
        hint = difflib.get_close_matches(arch, names, 3)
        raise BenchmarkError(f"unknown model {arch!r}; " + (f"did you mean {', '.join(hint)}?" if hint
                                                            else f"registered: {', '.join(names)}"))
    return arch


def build_for_benchmark(arch, class_dim, recipe=None):
    from ..modeling import build_model
    check_arch(arch)
    params = dict(((recipe or {}).get("ARCHITECTURE") or {}).get("params") or {})
    return build_model(arch, class_dim=class_dim, **params)


class TrainRunner:
    """The engine's training step on a fixed synthetic batch."""

    def __init__(self, model, x, y, recipe):
        from ..engine.step import TrainStep
        from ..optimizer import build_lr_scheduler, build_optimizer
        opt_cfg = (recipe or {}).get("OPTIMIZER") or {
            "function": "Momentum", "params": {"momentum": 0.9},
            "regularizer": {"function": "L2", "factor": 1e-4}}
        lr_cfg = (recipe or {}).get("LEARNING_RATE") or {"function": "Cosine", "params": {"lr": 0.1}}
        self.eps = max(0.0, float((recipe or {}).get("ls_epsilon", 0.0) or 0.0))
        self.model, self.x, self.y = model, x, y
        self.sched = build_lr_scheduler(lr_cfg, 1000, 10)
        self.opt = build_optimizer(opt_cfg, self.sched, model.parameters())
        self.step_fn = TrainStep(self.opt, self.sched)

    def __call__(self):
        from ..modeling.loss import cross_entropy
        self.model.train()
        with self.step_fn.forward_context(self.model):
            loss = cross_entropy(self.model(self.x), self.y, self.eps)
        value = float(loss)                     # the engine reads the loss every step
        self.step_fn.backward(loss)
        return value


class DygraphForward:
    def __init__(self, model, x):
        self.model, self.x = model, x

    def __call__(self):
        import paddle
        self.model.eval()
        with paddle.no_grad():
            return self.model(self.x).numpy()


class StaticEvalForward:
    """The engine's fast evaluation path, exactly as ``_validate`` / ``run_eval`` use it."""

    def __init__(self, model, x, threads):
        from ..engine.static_eval import PredictorForward
        model.eval()
        self.forward = PredictorForward(model, threads)
        self.x = x

    def __call__(self):
        return self.forward(self.x).numpy()

    @property
    def fell_back(self):
        return self.forward.failed

    def close(self):
        self.forward.close()


class ExportedRunner:
    """An exported program (paddle.jit.save, dynamic batch) run by Paddle Inference + oneDNN or,
    converted by paddle2onnx, by ONNX Runtime. Uses the deployment code of ppcls.inference."""

    def __init__(self, model, x, threads, backend, export_dir):
        import paddle
        from ..inference.export import MODEL_PREFIX, convert_onnx, model_files
        self.x = x
        prog, params = model_files(export_dir)
        if prog is None:
            model.eval()
            spec = [paddle.static.InputSpec([None, *x.shape[1:]], "float32", "x")]
            paddle.jit.save(model, os.path.join(export_dir, MODEL_PREFIX), input_spec=spec)
            prog, params = model_files(export_dir)
        if backend == "paddle_inference":
            from ..inference.predictor import PaddleBackend
            self.run = PaddleBackend(prog, params, use_gpu=False, cpu_threads=threads,
                                     enable_mkldnn=True)
        else:
            from ..inference.predictor import OnnxBackend
            onnx_file = os.path.join(export_dir, MODEL_PREFIX + ".onnx")
            if not os.path.isfile(onnx_file):
                convert_onnx(prog, params, onnx_file)
            self.run = OnnxBackend(onnx_file, use_gpu=False, cpu_threads=threads)

    def __call__(self):
        return self.run(self.x)


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


def synthetic_batch(batch_size, input_size, class_dim):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, 3, input_size, input_size), dtype=np.float32)
    y = rng.integers(0, class_dim, (batch_size, 1)).astype("int64")
    return x, y


def make_runner(case, model, x, y, x_np, recipe, tmp_dirs):
    if case.mode == "train":
        return TrainRunner(model, x, y, recipe)
    if case.backend == "dygraph":
        return DygraphForward(model, x)
    if case.backend == "static":
        return StaticEvalForward(model, x, case.threads)
    if "export" not in tmp_dirs:
        tmp_dirs["export"] = tempfile.mkdtemp(prefix="ppcls_bench_")
    return ExportedRunner(model, x_np, case.threads, case.backend, tmp_dirs["export"])


def _child_env(drop=()):
    """This process's environment less ``drop``, with the repository importable."""
    from .flops import REPO_ROOT
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


class PaddleDefaultsRunner:
    self_timed = True         # __call__ returns the child's own timing of the iteration
    """A case run by a child process started with Paddle's defaults (``python -m
    ppcls.utils.benchmark --worker``): it builds the same model and batch, warms up, then runs
    one timed iteration per line it reads and answers with the seconds it took."""

    def __init__(self, arch, case, batch_size, input_size, class_dim, warmup):
        from .flops import REPO_ROOT
        spec = dict(arch=arch, mode=case.mode, backend=case.backend, batch_size=batch_size,
                    input_size=input_size, class_dim=class_dim, warmup=warmup)
        self.label = case.label
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ppcls.utils.benchmark", "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env=_child_env(NOT_PADDLE_DEFAULTS), cwd=REPO_ROOT, text=True, bufsize=1)
        self.child_mkl_switch = self._expect("ready")[0]     # what MKL saw when it loaded

    def _expect(self, word):
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-5:]
            raise BenchmarkError(f"{self.label}: the Paddle-defaults child process failed "
                                 f"(exit {self.proc.returncode}): " + " | ".join(tail))
        return line.split()[1:]

    def __call__(self):
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self._expect("time")[0])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()


class MultiProcessRunner:
    self_timed = True         # __call__ returns the round trip of one step on every rank
    """Data-parallel training in ``case.procs`` processes of ``case.threads`` threads, started by
    ``paddle.distributed.launch`` exactly as a multi-process CPU run of tools/train.py is (gloo
    all-reduce, ``batch_size`` split over the processes). Each process builds the model, warms
    up, connects to this process over a local socket and runs one step per ``run`` it reads;
    an iteration is timed here from the request to the last answer."""

    def __init__(self, arch, case, batch_size, input_size, class_dim, warmup):
        import socket
        from .flops import REPO_ROOT
        if batch_size % case.procs:
            raise BenchmarkError(f"{case.label}: --batch_size {batch_size} is not divisible by "
                                 f"{case.procs} processes")
        self.label = case.label
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(case.procs)
        self.server.settimeout(1.0)
        self.log_dir = tempfile.mkdtemp(prefix="ppcls_bench_launch_")
        spec = dict(arch=arch, mode=case.mode, backend=case.backend, threads=case.threads,
                    batch_size=batch_size // case.procs, input_size=input_size,
                    class_dim=class_dim, warmup=warmup, port=self.server.getsockname()[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
             str(case.procs), "--log_dir", self.log_dir,
             os.path.join(REPO_ROOT, "tools", "benchmark.py"), "--worker", json.dumps(spec)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env(), cwd=REPO_ROOT)
        self.conns = []
        try:
            while len(self.conns) < case.procs:
                try:
                    conn, _ = self.server.accept()
                except socket.timeout:
                    if self.proc.poll() is not None:
                        self._fail("ended before it was ready")
                    continue
                self.conns.append(conn.makefile("rw"))
            for f in self.conns:
                if not f.readline().startswith("ready"):
                    self._fail("did not get ready")
        except BaseException:
            self.close()
            raise

    def _fail(self, what):
        tail = ""
        log = os.path.join(self.log_dir, "workerlog.0")
        if os.path.isfile(log):
            with open(log, errors="replace") as f:
                tail = " | ".join(f.read().strip().splitlines()[-5:])
        raise BenchmarkError(f"{self.label}: the data-parallel worker processes {what} "
                             f"(launch exit {self.proc.poll()}): {tail}")

    def __call__(self):
        t = time.perf_counter()
        for f in self.conns:      # every rank must get it before any answer is awaited
            f.write("run\n")
            f.flush()
        for f in self.conns:
            if not f.readline().startswith("time"):
                self._fail("stopped answering")
        return time.perf_counter() - t

    def close(self):
        for f in self.conns:
            try:
                f.close()
            except OSError:
                pass
        self.server.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def run_cases(arch, cases, batch_size=16, input_size=224, class_dim=1000, warmup=2, iters=10,
              log=print):
    """Build each case, warm it up, then time ``iters`` rounds of one iteration per case in
    turn. Returns (results, macs per image)."""
    import paddle
    from ..engine.env import set_cpu_threads
    from .flops import count_macs
    recipe = recipe_for(arch)
    gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    paddle.set_device("gpu" if gpu else "cpu")
    x_np, y_np = synthetic_batch(batch_size, input_size, class_dim)
    x, y = paddle.to_tensor(x_np), paddle.to_tensor(y_np)
    paddle.seed(0)
    macs = count_macs(build_for_benchmark(arch, class_dim, recipe), input_size)
    runners, results, tmp_dirs = [], [], {}
    try:
        for case in cases:
            note = ""
            if case.paddle_defaults:
                runner = PaddleDefaultsRunner(arch, case, batch_size, input_size, class_dim, warmup)
                note = f"fresh process, Paddle's defaults: {runner.child_mkl_switch}"
            elif case.procs > 1:
                runner = MultiProcessRunner(arch, case, batch_size, input_size, class_dim, warmup)
                note = (f"{case.procs} data-parallel processes x {batch_size // case.procs} images "
                        f"(paddle.distributed.launch, gloo)")
            else:
                set_cpu_threads(case.threads)
                paddle.seed(0)
                model = build_for_benchmark(arch, class_dim, recipe)
                runner = make_runner(case, model, x, y, x_np, recipe, tmp_dirs)
                for _ in range(warmup):
                    runner()
                if getattr(runner, "fell_back", False):
                    note = "predictor unavailable: ran in dygraph"
            factor = 3 if case.mode == "train" else 1
            results.append(Result(case, [], batch_size, factor * 2 * macs / 1e9, note))
            runners.append(runner)
            log(f"  ready: {case.label} ({warmup} warm-up iterations)")
        for _ in range(iters):
            for case, runner, result in zip(cases, runners, results):
                if getattr(runner, "self_timed", False):
                    result.times.append(runner())
                    continue
                set_cpu_threads(case.threads)
                t = time.perf_counter()
                runner()
                result.times.append(time.perf_counter() - t)
    finally:
        for runner in runners:
            if hasattr(runner, "close"):
                runner.close()
        for d in tmp_dirs.values():
            shutil.rmtree(d, ignore_errors=True)
    return results, macs


def _warm_runner(spec, case, rank=0, parallel=False):
    """A child's runner for ``spec``: the parent's synthetic batch (rank > 0: other images, as
    each rank of a training run sees its own), the model, warmed up."""
    import paddle
    recipe = recipe_for(spec["arch"])
    x_np, y_np = synthetic_batch(spec["batch_size"], spec["input_size"], spec["class_dim"])
    if rank:
        x_np = np.random.default_rng(rank).standard_normal(x_np.shape, dtype=np.float32)
    x, y = paddle.to_tensor(x_np), paddle.to_tensor(y_np)
    paddle.seed(0)
    model = build_for_benchmark(spec["arch"], spec["class_dim"], recipe)
    if parallel:
        model = paddle.DataParallel(model)
    runner = make_runner(case, model, x, y, x_np, recipe, {})
    for _ in range(spec["warmup"]):
        runner()
    return runner


def _serve(runner, lines, send):
    """Run one timed iteration per ``run`` line and answer with its seconds."""
    for line in lines:
        if line.strip() != "run":
            break
        t = time.perf_counter()
        runner()
        send(f"time {time.perf_counter() - t:.6f}")


def _worker(spec_json):
    """A benchmark child: a Paddle-defaults case (protocol on stdin/stdout) or, with a port, one
    process of a data-parallel case (protocol on a socket)."""
    spec = json.loads(spec_json)
    if "port" in spec:
        return _data_parallel_worker(spec)
    proto = os.fdopen(os.dup(1), "w", buffering=1)     # protocol lines on the real stdout,
    os.dup2(2, 1)                                       # Paddle's and our logs on stderr
    sys.stdout = sys.stderr
    import paddle
    paddle.set_device("cpu")
    runner = _warm_runner(spec, Case(spec["mode"], spec["backend"], DEFAULT_THREADS))
    proto.write(f"ready MKL_DEBUG_CPU_TYPE={os.environ.get('MKL_DEBUG_CPU_TYPE', 'unset')}\n")
    _serve(runner, sys.stdin, lambda line: proto.write(line + "\n"))


def _data_parallel_worker(spec):
    """One process of MultiProcessRunner, started by paddle.distributed.launch."""
    import socket
    from ..engine.env import init_env
    env = init_env("auto", spec["threads"], None)
    case = Case(spec["mode"], spec["backend"], spec["threads"])
    runner = _warm_runner(spec, case, env.rank, parallel=env.world_size > 1)
    f = socket.create_connection(("127.0.0.1", spec["port"])).makefile("rw")

    def send(line):               # a socket file has no line buffering: flush each message
        f.write(line + "\n")
        f.flush()
    send(f"ready {env.rank}")
    _serve(runner, f, send)


# ----------------------------------------------------------------------------- report
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


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(sys.argv[2])
    else:
        sys.exit("usage: python tools/benchmark.py ... (this module's --worker mode is internal)")

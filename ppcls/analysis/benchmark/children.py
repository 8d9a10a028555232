"""Cases run in other processes: a fresh child with Paddle's defaults, and data-parallel
training under ``paddle.distributed.launch``; the children's side of both protocols."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from ...utils.paths import REPO_ROOT
from .cases import DEFAULT_THREADS, NOT_PADDLE_DEFAULTS, BenchmarkError, Case
from .runners import build_for_benchmark, make_runner, recipe_for, synthetic_batch


def _child_env(drop=()):
    """This process's environment less ``drop``, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    return env


class PaddleDefaultsRunner:
    self_timed = True         # __call__ returns the child's own timing of the iteration
    """A case run by a child process started with Paddle's defaults (``python -m
    ppcls.analysis.benchmark --worker``): it builds the same model and batch, warms up, then runs
    one timed iteration per line it reads and answers with the seconds it took."""

    def __init__(self, arch, case, batch_size, input_size, class_dim, warmup):
        spec = dict(arch=arch, mode=case.mode, backend=case.backend, batch_size=batch_size,
                    input_size=input_size, class_dim=class_dim, warmup=warmup)
        self.label = case.label
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ppcls.analysis.benchmark", "--worker", json.dumps(spec)],
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
    from ...engine.env import init_env
    env = init_env("auto", spec["threads"], None)
    case = Case(spec["mode"], spec["backend"], spec["threads"])
    runner = _warm_runner(spec, case, env.rank, parallel=env.world_size > 1)
    f = socket.create_connection(("127.0.0.1", spec["port"])).makefile("rw")

    def send(line):               # a socket file has no line buffering: flush each message
        f.write(line + "\n")
        f.flush()
    send(f"ready {env.rank}")
    _serve(runner, f, send)

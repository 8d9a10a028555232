"""The machine a benchmark runs on: its SGEMM peak, CPU name and load."""
import os
import time

import numpy as np


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
    from ...utils.device import set_cpu_threads
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

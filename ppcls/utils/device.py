"""Devices and CPU threads: what the machine has and how many intra-op threads each process
gets. Below the engine and the inference code, which both use it."""
import os

import paddle


def local_world_size():
    """Processes of this run on this machine (paddle.distributed.launch sets the env)."""
    for key in ("PADDLE_LOCAL_SIZE", "PADDLE_NPROC_PER_NODE"):
        if os.environ.get(key, "").isdigit():
            return max(1, int(os.environ[key]))
    trainers = os.environ.get("PADDLE_TRAINERS_NUM", "")
    nnodes = os.environ.get("PADDLE_NNODES", "1")
    if trainers.isdigit() and nnodes.isdigit():
        return max(1, int(trainers) // max(1, int(nnodes)))
    return 1


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads():
    return max(1, available_cores() // local_world_size())


def set_cpu_threads(n):
    """Intra-op threads for Paddle's CPU kernels (its default is one)."""
    n = int(n) if n else default_threads()
    os.environ["OMP_NUM_THREADS"] = str(n)
    paddle.framework.core.set_num_threads(n)
    return n


def gpu_available():
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0

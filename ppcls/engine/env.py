"""Run environment: ranks, device, threads, seeds. Chosen at run time, so one code path serves
CPU, one GPU and ``paddle.distributed.launch`` on GPUs or CPU processes (gloo)."""
import os
import random
from dataclasses import dataclass

import numpy as np
import paddle
import paddle.distributed as dist

from ..utils.device import (available_cores, default_threads, gpu_available,  # noqa: F401
                            local_world_size, set_cpu_threads)
from ..utils.quiet import quiet_parallel_banner
from . import peers


@dataclass
class RunEnv:
    rank: int
    world_size: int
    local_size: int
    device: str
    threads: int

    @property
    def on_cpu(self):
        return self.device.startswith("cpu") or self.device.startswith("Place(cpu")


def warn_slow_mkl():
    """Paddle was imported without ``MKL_DEBUG_CPU_TYPE=5`` on an AMD CPU with AVX2: MKL runs its
    generic kernels and dygraph training is ~2.7x slower for DLA60 (tools/*.py set it before importing
    paddle; ppcls.utils.cpu_env)."""
    from ..utils.cpu_env import mkl_avx2_switch
    if mkl_avx2_switch() is not None:
        import warnings
        warnings.warn("MKL runs its generic (non-AVX2) kernels on this AMD CPU: dygraph training "
                      "and evaluation are ~2-3x slower. Set MKL_DEBUG_CPU_TYPE=5 before importing "
                      "paddle (the tools do; in Python call ppcls.prepare_cpu_env() before "
                      "importing paddle; PPCLS_NO_MKL_AVX2=1 silences this)",
                      RuntimeWarning, stacklevel=3)


def init_env(use_gpu="auto", cpu_threads=0, seed=None):
    world_size = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    from ..utils.config import ConfigError
    if use_gpu is True and not gpu_available():
        raise ConfigError("use_gpu: True but Paddle sees no GPU (is paddlepaddle-gpu installed "
                          "and CUDA_VISIBLE_DEVICES set?); set use_gpu: auto to fall back to CPU")
    if seed is not None and not 0 <= seed < 2 ** 32 - 2 ** 20:
        raise ConfigError(f"seed: must be an integer in [0, {2 ** 32 - 2 ** 20}) (NumPy's seed "
                          f"range, less room for per-rank and per-epoch offsets), got {seed}")
    on_gpu = gpu_available() if use_gpu == "auto" else bool(use_gpu)
    if on_gpu:
        local_rank = int(os.environ.get("PADDLE_LOCAL_RANK", os.environ.get("FLAGS_selected_gpus", "0").split(",")[0] or 0))
        device = paddle.set_device(f"gpu:{local_rank}")
    else:
        device = paddle.set_device("cpu")
    threads = set_cpu_threads(cpu_threads) if not on_gpu else 0
    if not on_gpu:
        warn_slow_mkl()
    if world_size > 1 and not dist.is_initialized():
        quiet_parallel_banner()
        dist.init_parallel_env()
    rank = dist.get_rank() if world_size > 1 else 0
    peers.start(rank, world_size)       # waiting without gloo's 30 s limit, heartbeat
    if seed is not None:
        seed_everything(seed + rank)
    return RunEnv(rank, world_size, local_world_size(), str(device), threads)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def announce_failure(error):
    """On a worker of ``paddle.distributed.launch``, append one line naming this rank, the error
    and this rank's log to the local rank-0 log, which the launcher prints. When one rank fails,
    the others abort at their next collective and the launcher reports the lowest failed rank,
    often one that only lost its peer; this line points at the cause. No-op otherwise."""
    log_dir, local = os.environ.get("PADDLE_LOG_DIR"), os.environ.get("PADDLE_LOCAL_RANK")
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1 or not log_dir or local in (None, "0"):
        return
    rank = os.environ.get("PADDLE_TRAINER_ID", local)
    first = (str(error).strip().splitlines() or [""])[0]
    line = (f"error: worker rank {rank} failed ({type(error).__name__}: {first}); its log: "
            f"{os.path.join(log_dir, f'workerlog.{local}')}\n")
    try:
        with open(os.path.join(log_dir, "workerlog.0"), "a") as f:
            f.write(line)
    except OSError:
        pass

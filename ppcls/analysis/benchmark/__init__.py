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
FLOPs per image are 2 x MACs (ppcls.analysis.flops.count_macs) for a forward pass and 3x that for a
training step (forward + backward for activations and weights). Several cases run interleaved
(one timed iteration of each in turn, a ``default`` case by a message to its child process), so
a change in machine load hits them alike and their ratio stays meaningful; each case is timed
after its own warm-up iterations.
"""
import shutil
import time

from .cases import (BACKEND_NAMES, DEFAULT_BACKEND, DEFAULT_THREADS, FORWARD_BACKENDS, MODES,
                    BenchmarkError, Case, Result, check_case, format_table, onnxruntime_missing,
                    parse_cases)
from .children import MultiProcessRunner, PaddleDefaultsRunner
from .machine import cpu_name, load_average, sgemm_peak
from .runners import build_for_benchmark, check_arch, make_runner, recipe_for, synthetic_batch


def run_cases(arch, cases, batch_size=16, input_size=224, class_dim=1000, warmup=2, iters=10,
              log=print):
    """Build each case, warm it up, then time ``iters`` rounds of one iteration per case in
    turn. Returns (results, macs per image)."""
    import paddle
    from ...utils.device import set_cpu_threads
    from ..flops import count_macs
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

"""Measure training / evaluation / inference speed: images/s (median), FLOPs per image, achieved
GFLOP/s and its fraction of this machine's measured SGEMM peak.

  python tools/benchmark.py -a DLA60                                  (train, dygraph, all cores)
  python tools/benchmark.py -a DLA60 --mode eval --backend static     (the engine's fast eval)
  python tools/benchmark.py -a DLA60 --mode infer --backend onnxruntime
  python tools/benchmark.py -a DLA60 --compare                        (train: Paddle's defaults, 1 thread, all cores)
  python tools/benchmark.py -a DLA60 --mode eval --compare            (dygraph default / N threads vs static)
  python tools/benchmark.py -a DLA60 --compare all                    (every path, one table)
  python tools/benchmark.py -a DLA60 --compare train:dygraph:1,eval:static:2,infer:onnxruntime:2
  python tools/benchmark.py --mode data -c configs/DLA/DLA60_best.yaml [--data dataset/photos]

Modes and backends: train (dygraph: the engine's TrainStep with the recipe's optimizer);
eval / infer with dygraph, static (the engine's oneDNN-predictor eval), paddle_inference (an
exported model, as tools/infer.py runs it), onnxruntime (paddle2onnx + ONNX Runtime, if
installed). Inputs are synthetic (random) batches. Training FLOPs = 3 x forward. THREADS
'default' runs a dygraph case in a child process with Paddle's own defaults (one intra-op
thread, none of the cpu_env switches such as MKL_DEBUG_CPU_TYPE): the baseline the speed
targets are stated against. --compare cases run interleaved (one iteration of each in turn), so
their ratios hold even when the machine is busy; the ratio column is relative to the first row
of the same mode; the load average is printed with the results.

--mode data measures the input pipeline instead (ppcls/analysis/benchmark/data.py): images/s
per core of the recipe's TRAIN and VALID per-sample pipelines next to the decode-only ceiling
(cv2.imdecode of the same files), and the training DataLoader with 1..cores workers
(--workers), on the photo folder of `tools/prepare_demo_data.py --photos 512` (dataset/photos;
--data DIR for another folder of images), with issue 18's targets.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (no paddle import)

CPU_ENV = prepare_cpu_env()          # before paddle is imported


def parser():
    p = argparse.ArgumentParser(description="Images/s, GFLOP/s and %% of SGEMM peak of a model's "
                                            "training, evaluation and inference paths; "
                                            "--mode data: images/s per core of a recipe's "
                                            "input pipeline.",
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-a", "--arch", help="registered model name, e.g. DLA60 (train/eval/infer)")
    p.add_argument("-c", "--config", help="--mode data: the recipe whose TRAIN and VALID "
                                          "transforms are measured")
    p.add_argument("--data", default=None, help="--mode data: a folder of images (default: "
                                                 "dataset/photos, see prepare_demo_data.py --photos)")
    p.add_argument("--workers", default=None, help="--mode data: DataLoader worker counts, e.g. "
                                                   "1,2 (default: 1..cores)")
    p.add_argument("--batch_size", type=int, default=None, help="default 16 (64 for --mode data)")
    p.add_argument("--input_size", type=int, default=224)
    p.add_argument("--class_dim", type=int, default=1000)
    p.add_argument("--mode", choices=("train", "eval", "infer", "data"), default="train")
    p.add_argument("--backend", choices=("dygraph", "static", "paddle_inference", "onnxruntime"),
                   help="default: dygraph for train, static for eval, paddle_inference for infer")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (default: cores / local workers, as the engine)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per case (default 2)")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per case (default 10; "
                                                         "--mode data: rounds)")
    p.add_argument("--peak", default="auto",
                   help="SGEMM peak in GFLOP/s for the %%peak column: auto (measure, 2048^3 float32 "
                        "at --threads), a number, or none")
    p.add_argument("--compare", nargs="?", const="default", default=None, metavar="CASES",
                   help="run several cases side by side: no value = the standard set for --mode, "
                        "'all' = every path, or MODE:BACKEND:THREADS,... (THREADS: a number, N = "
                        "--threads, or default = Paddle's defaults in a child process)")
    p.add_argument("--json", action="store_true", help="also print one JSON object per case")
    return p


def main():
    args = parser().parse_args()
    from ppcls.analysis import benchmark as bm
    if args.mode == "data":
        return data_main(args)
    if not args.arch:
        raise bm.BenchmarkError(f"--mode {args.mode} needs -a ARCH (a registered model name)")
    if args.batch_size is None:
        args.batch_size = 16
    for name in ("batch_size", "input_size", "class_dim", "iters"):
        if getattr(args, name) < 1:
            raise bm.BenchmarkError(f"--{name} must be >= 1")
    if args.warmup < 0:
        raise bm.BenchmarkError("--warmup must be >= 0")
    import paddle
    from ppcls.utils.device import default_threads
    bm.check_arch(args.arch)
    threads = args.threads or default_threads()
    if args.compare is not None:
        cases = bm.parse_cases(args.compare, args.mode, args.backend, threads)
    else:
        cases = [bm.check_case(bm.Case(args.mode, args.backend or bm.DEFAULT_BACKEND[args.mode],
                                       threads))]
    peak_info = None
    if args.peak == "auto":
        peak_info = bm.sgemm_peak(max(c.threads for c in cases))
        peak = peak_info["peak"]
    elif args.peak.lower() == "none":
        peak = None
    else:
        try:
            peak = float(args.peak)
        except ValueError:
            raise bm.BenchmarkError(f"--peak must be auto, none or GFLOP/s, got {args.peak!r}") from None
    load0 = bm.load_average()
    print(f"benchmark: {args.arch}, batch {args.batch_size}, {args.input_size}x{args.input_size}, "
          f"Paddle {paddle.__version__}, {bm.cpu_name()} ({os.cpu_count()} cores), "
          f"{args.warmup} warm-up + {args.iters} timed iterations per case"
          + (f"; set {', '.join(f'{k}={v}' for k, v in CPU_ENV.items())} (cpu_env)" if CPU_ENV else ""))
    if peak_info:
        print(f"SGEMM peak: {peak_info['peak']:.1f} GFLOP/s ({peak_info['n']}^3 float32, "
              f"{peak_info['threads']} threads; numpy {peak_info['numpy']:.1f}, "
              f"paddle {peak_info['paddle']:.1f})")
    elif peak:
        print(f"SGEMM peak: {peak:.1f} GFLOP/s (given)")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    results, macs = bm.run_cases(args.arch, cases, args.batch_size, args.input_size,
                                 args.class_dim, args.warmup, args.iters)
    load1 = bm.load_average()
    print(f"forward: {2 * macs / 1e9:.3f} GFLOPs/image (2 x {macs / 1e9:.3f} GMACs); "
          f"training: 3x forward")
    print(bm.format_table(results, peak))
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if args.json:
        for r in results:
            d = dict(arch=args.arch, input_size=args.input_size, load_avg_1min=round(load1[0], 2),
                     peak_gflops=round(peak, 1) if peak else None, **r.as_dict(peak))
            print("JSON " + json.dumps(d))
    return results


def data_main(args):
    """--mode data: the input pipeline of a recipe (ppcls.analysis.benchmark.data)."""
    import cv2
    from ppcls.analysis import benchmark as bm
    from ppcls.analysis.benchmark import data as bd
    from ppcls.engine.recipe import load_config
    if not args.config:
        raise bm.BenchmarkError("--mode data needs -c RECIPE, e.g. -c configs/DLA/DLA60_best.yaml")
    batch_size = 64 if args.batch_size is None else args.batch_size
    if batch_size < 1 or args.iters < 1 or args.warmup < 0:
        raise bm.BenchmarkError("--batch_size and --iters must be >= 1, --warmup >= 0")
    workers = None
    if args.workers:
        try:
            workers = [int(w) for w in args.workers.split(",")]
        except ValueError:
            workers = [0]
        if min(workers) < 1:
            raise bm.BenchmarkError(f"--workers must be worker counts >= 1 such as 1,2; got "
                                    f"{args.workers!r}")
    data_dir = args.data or bd.DEFAULT_DATA
    if args.data is None and not os.path.isdir(data_dir):
        raise bm.BenchmarkError(f"no photo folder at {data_dir}: {bd.PHOTOS_HINT}")
    cfg = load_config(args.config, [])
    load0 = bm.load_average()
    print(f"benchmark data: {args.config} on {data_dir}, batch {batch_size}, {bm.cpu_name()} "
          f"({bd.usable_cores()} cores), OpenCV {cv2.__version__}, {args.warmup} warm-up + "
          f"{args.iters} timed rounds, cases interleaved")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    results, info = bd.run_data_cases(cfg, data_dir, batch_size, workers, args.warmup, args.iters)
    load1 = bm.load_average()
    print(f"{info['images']} images (first: {info['image_size']}); per-sample cases: one core, "
          f"CPU time, interleaved per image; DataLoader: wall clock, the whole loader (per core = "
          f"/ workers; per CPU-s = over the CPU time of all its processes)")
    print(bd.format_data_table(results, info["cores"]))
    print("targets (issue 18):")
    print(bd.format_targets(results, info["cores"]))
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if args.json:
        rat = bd.ratios(results, info["cores"])
        for r in results:
            d = dict(recipe=args.config, load_avg_1min=round(load1[0], 2), **r.as_dict())
            if r.name in rat:
                d["share"] = round(rat[r.name], 4)
            print("JSON " + json.dumps(d))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":      # a data-parallel case's process
        from ppcls.analysis.benchmark.children import _worker
        _worker(sys.argv[2])
        sys.exit(0)
    from ppcls.utils.cli import run_cli
    run_cli(main)

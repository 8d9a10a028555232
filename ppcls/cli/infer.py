"""Classify images with an exported model (tools/export_model.py): Paddle Inference, ONNX Runtime,
or the source checkpoint in dygraph (a reference).

  python tools/infer.py --model_dir inference/DLA60 --image demo.jpg
  python tools/infer.py --model_dir inference/DLA60 --image photos/ --batch_size 16 --save_json out.json
  python tools/infer.py --model_dir inference/DLA60 --image val_list.txt      # `path [label]` lines
  python tools/infer.py --model_dir inference/DLA60 --backend onnxruntime --image demo.jpg
  python tools/infer.py --model_dir inference/DLA60 --benchmark --batch_size 16

Preprocessing is read from MODEL_DIR/inference.yml and built with the same operators as
training-time evaluation. With a file list that has labels, top-1/top-k accuracy is printed too.
--benchmark times the model alone (warm-up runs, then the median latency per batch) on the first
batch of --image, or on a random batch of the export's input size when no --image is given.
"""
import argparse
import json
import os
import sys

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (imports no paddle)

prepare_cpu_env()      # MKL's AVX2 kernels on AMD CPUs: must precede `import paddle`

from ppcls.utils.cli import run_cli  # noqa: E402


def tri_state(text):
    value = text.lower()
    if value in ("auto",):
        return "auto"
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected auto, true or false, got {text!r}")


def parser():
    p = argparse.ArgumentParser(description="Classify images with an exported model.",
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="folder written by tools/export_model.py")
    p.add_argument("-i", "--image", help="an image, a folder of images, or a file list "
                   "(`path [label]` per line, paths relative to the list's folder or --data_dir)")
    p.add_argument("--data_dir", help="root of the relative paths of a file list")
    p.add_argument("--topk", type=int, default=5, help="classes reported per image (default 5)")
    p.add_argument("--batch_size", type=int, default=1, help="images per model run (default 1)")
    p.add_argument("--backend", choices=("paddle", "onnxruntime", "dygraph"), default="paddle",
                   help="paddle: Paddle Inference (default); onnxruntime: MODEL_DIR/inference.onnx "
                        "(export with --onnx); dygraph: the source checkpoint in eager mode, a "
                        "reference for outputs and speed")
    p.add_argument("--cpu_threads", type=int, default=0, help="0: all available cores")
    p.add_argument("--use_gpu", type=tri_state, nargs="?", const=True, default="auto",
                   metavar="{auto,true,false}", help="default auto: GPU when one is available")
    p.add_argument("--use_tensorrt", action="store_true", help="TensorRT (GPU only)")
    p.add_argument("--enable_mkldnn", type=tri_state, nargs="?", const=True, default=True,
                   metavar="{true,false}", help="oneDNN for Paddle Inference on CPU (default true)")
    p.add_argument("--save_json", help="write the results (and benchmark) to this JSON file")
    p.add_argument("--benchmark", action="store_true", help="time the model per batch")
    p.add_argument("--warmup", type=int, default=5, help="--benchmark warm-up runs (default 5)")
    p.add_argument("--iters", type=int, default=20, help="--benchmark timed runs (default 20)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-image lines")
    return p


def main():
    p = parser()
    if len(sys.argv) == 1:
        p.print_usage(sys.stderr)
        print(f"\n{p.prog} needs an export (--model_dir) and images (--image). Examples:\n"
              + __doc__.split("\n", 2)[2], file=sys.stderr)
        sys.exit(2)
    args = p.parse_args()
    from ppcls.inference import InferenceError
    try:
        return run(args)
    except InferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run(args):
    import numpy as np
    from ppcls.inference import InferenceError, Predictor, list_inputs
    from ppcls.inference.predictor import accuracy, format_result
    for name in ("topk", "batch_size", "iters"):
        if getattr(args, name) < 1:
            raise InferenceError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.cpu_threads < 0 or args.warmup < 0:
        raise InferenceError("--cpu_threads and --warmup must be >= 0")
    if args.enable_mkldnn == "auto":
        args.enable_mkldnn = True
    if not args.image and not args.benchmark:
        raise InferenceError("no input: give --image PATH (an image, a folder or a file list), "
                             "or --benchmark")
    if args.save_json:
        parent = os.path.dirname(os.path.abspath(args.save_json))
        if not os.path.isdir(parent):
            raise InferenceError(f"--save_json {args.save_json}: folder {parent} does not exist")
    items = list_inputs(args.image, args.data_dir) if args.image else []
    pred = Predictor(args.model_dir, args.backend, args.use_gpu, args.use_tensorrt,
                     args.cpu_threads, args.enable_mkldnn, args.batch_size)
    g = pred.info["Global"]
    print(f"{g.get('model_name', '?')} ({g['class_num']} classes) from {args.model_dir} on "
          f"{pred.describe()}; {len(items)} image(s), batch {args.batch_size}; scores are "
          f"{'probabilities' if pred.softmax else 'logits'}", flush=True)
    out = {"model_dir": args.model_dir, "backend": args.backend, "device": pred.describe(),
           "softmax": pred.softmax, "topk": min(args.topk, g["class_num"])}
    if items:
        show = None if args.quiet else (lambda r: print(format_result(r), flush=True))
        results = pred.predict(items, args.topk, on_batch=show)
        out["results"] = results
        acc = accuracy(results, out["topk"])
        if acc:
            k = out["topk"]
            print(f"accuracy on {acc['num_labeled']} labelled image(s): top1: {acc['top1']:.5f}, "
                  f"top{k}: {acc[f'top{k}']:.5f}")
            out["accuracy"] = acc
    if args.benchmark:
        if items:
            chunk = items[:args.batch_size]
            imgs = [pred.preprocess(path) for path, _ in chunk]
            imgs = (imgs * args.batch_size)[:args.batch_size]       # fill the batch
            if len({im.shape for im in imgs}) > 1:
                raise InferenceError("--benchmark: the first images preprocess to different sizes; "
                                     "use --batch_size 1 or an export with a center crop")
            batch = np.stack(imgs)
        else:
            batch = np.random.RandomState(0).standard_normal(
                [args.batch_size, 3, *bench_hw(pred)]).astype("float32")
        b = pred.benchmark(batch, args.warmup, args.iters)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        b["device"], b["load_average_1min"] = pred.describe(), load
        print(f"benchmark: {pred.describe()}, input {b['input_shape']}: median "
              f"{b['median_ms']:.2f} ms/batch (p10 {b['p10_ms']:.2f}, p90 {b['p90_ms']:.2f}) over "
              f"{b['iters']} runs after {b['warmup']} warm-up, {b['images_per_s']:.1f} images/s; "
              f"CPU time {b['median_cpu_ms']:.0f} ms/batch (load average {load:.2f})")
        out["benchmark"] = b
    if args.save_json:
        tmp = f"{args.save_json}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
        os.replace(tmp, args.save_json)
        print(f"wrote {args.save_json}")
    return out


def bench_hw(pred):
    """Input size for a synthetic batch: the export's fixed size, else its preprocessing size."""
    from ppcls.inference.preprocess import output_hw
    h, w = pred.input_shape[2:]
    if h > 0 and w > 0:
        return h, w
    explicit = pred.info["PreProcess"]["transform_ops"]
    hw = output_hw(explicit)
    if hw:
        return hw
    short = [v.get("resize_short") for item in explicit for v in item.values() if isinstance(v, dict)]
    side = next((s for s in short if s), 224)
    return side, side


def cli_main():
    """Console-script entry point: user errors print one ``error:`` line and exit 2."""
    return run_cli(main)


if __name__ == "__main__":
    cli_main()

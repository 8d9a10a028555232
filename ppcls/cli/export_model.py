"""Export trained weights for deployment (Paddle Inference; ONNX with --onnx).

From a recipe (model, classes_num, eval preprocessing VALID.transforms, VALID.label_list):
  python tools/export_model.py -c configs/DLA/DLA60.yaml \\
      -o pretrained_model=output/DLA60/best_model/ppcls -o save_inference_dir=inference/DLA60

Short form (preprocessing: resize_short 256, center crop 224, bilinear, ImageNet mean/std):
  python tools/export_model.py -m DLA60 -p output/DLA60/best_model/ppcls -o inference/DLA60 \\
      [--class_dim 1000] [--resize_short 256 --crop 224 --interpolation bicubic]

A <Teacher>_distill_<Student> recipe (or -m name) exports the student, from the combined
checkpoint (.../best_model/ppcls) or the student's own weights (.../best_model/ppcls_student).

Writes DIR/inference.json (or .pdmodel with older Paddle) + inference.pdiparams, DIR/inference.yml
(preprocessing, labels, input shape) and, with --onnx, DIR/inference.onnx. The class count is the
checkpoint's; softmax is appended unless --no_softmax (-o export_softmax=False).
Then: python tools/infer.py --model_dir inference/DLA60 --image demo.jpg
"""
import argparse
import os
import sys

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (imports no paddle)

prepare_cpu_env()      # MKL's AVX2 kernels on AMD CPUs: must precede `import paddle`

from ppcls.utils.cli import run_cli  # noqa: E402


def parser():
    p = argparse.ArgumentParser(
        description="Export weights as a Paddle inference model (+ ONNX) with its preprocessing.",
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s (-c CONFIG [-o KEY=VALUE ...] | -m ARCH -p WEIGHTS [-o DIR] "
              "[--class_dim N]) [--onnx] [--no_softmax]")
    p.add_argument("-c", "--config", help="recipe YAML, e.g. configs/DLA/DLA60.yaml")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE|DIR",
                   help="with -c: config overrides (pretrained_model=..., save_inference_dir=..., "
                        "export_softmax=False); with -m: the output folder (default ./inference/)")
    p.add_argument("-m", "--model", help="architecture name (short form), e.g. DLA60")
    p.add_argument("-p", "--pretrained_model", help="weights, path without .pdparams "
                   "(with -c the same as -o pretrained_model=...)")
    p.add_argument("--class_dim", type=int, help="-m form: expected class count (default: read "
                   "from the weights' classifier)")
    p.add_argument("--label_list", help="-m form: `id name` per line (default: class ids)")
    p.add_argument("--resize_short", type=int, default=256, help="-m form (default 256)")
    p.add_argument("--crop", type=int, default=224, help="-m form: center crop, 0 for none (default 224)")
    p.add_argument("--interpolation", default="bilinear", help="-m form: nearest, bilinear, "
                   "bicubic, area, lanczos (default bilinear)")
    p.add_argument("--mean", type=float, nargs=3, help="-m form (default ImageNet)")
    p.add_argument("--std", type=float, nargs=3, help="-m form (default ImageNet)")
    p.add_argument("--no_softmax", action="store_true", help="output logits, not probabilities")
    p.add_argument("--onnx", action="store_true", help="also write inference.onnx (needs "
                   "`pip install paddle2onnx onnxruntime`)")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    return p


SHORT_ONLY = ("class_dim", "label_list", "mean", "std")


def main():
    p = parser()
    if len(sys.argv) == 1:
        p.print_usage(sys.stderr)
        print(f"\n{p.prog} needs a recipe (-c) or an architecture and weights (-m, -p). "
              "Examples:\n" + __doc__.split("\n", 2)[2], file=sys.stderr)
        sys.exit(2)
    args = p.parse_args()
    from ppcls.inference import InferenceError
    try:
        if bool(args.config) == bool(args.model):
            raise InferenceError("give either -c CONFIG or -m ARCH -p WEIGHTS (see --help)")
        if args.onnx:
            from ppcls.inference.onnx_export import onnx_available
            reason = onnx_available()
            if reason:
                raise InferenceError(f"--onnx: {reason}")
        return from_config(args) if args.config else from_args(args)
    except InferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _setup():
    import paddle
    from ppcls.utils.device import set_cpu_threads
    from ppcls.utils.logger import setup_logger
    paddle.set_device("cpu")            # export and its check run on CPU whatever the machine
    set_cpu_threads(0)
    setup_logger(0)


def from_config(args):
    from ppcls.inference import InferenceError
    from ppcls.inference.export import export_recipe
    from ppcls.engine.recipe import load_config
    used = [k for k in SHORT_ONLY if getattr(args, k) is not None]
    used += [k for k, d in (("resize_short", 256), ("crop", 224), ("interpolation", "bilinear"))
             if getattr(args, k) != d]
    if used:
        raise InferenceError(f"--{used[0]} belongs to the -m form; with -c the recipe decides "
                             f"(-o classes_num=N, VALID.transforms, VALID.label_list)")
    bad = [o for o in args.override if "=" not in o]
    if bad:
        raise InferenceError(f"-o {bad[0]!r}: with -c, -o takes KEY=VALUE (e.g. -o "
                             f"save_inference_dir={bad[0]})")
    overrides = list(args.override)
    if args.pretrained_model:
        overrides.append(f"pretrained_model={args.pretrained_model}")
    cfg = load_config(args.config, overrides)
    _setup()
    log = _log()
    export_recipe(cfg, softmax=not args.no_softmax, onnx=args.onnx, opset=args.opset, log=log)
    _done(log, cfg["save_inference_dir"])


def from_args(args):
    from ppcls.inference import InferenceError, default_ops
    from ppcls.inference.export import export_weights
    if not args.pretrained_model:
        raise InferenceError(f"-m {args.model} needs the weights: -p output/{args.model}/"
                             f"best_model/ppcls")
    if len(args.override) > 1:
        raise InferenceError(f"-m form: -o is the output folder, given {len(args.override)} times")
    save_dir = args.override[0] if args.override else "./inference/"
    if save_dir.startswith("save_inference_dir="):
        save_dir = save_dir.split("=", 1)[1]
    elif "=" in save_dir and not os.path.exists(save_dir):
        raise InferenceError(f"-m form: -o is the output folder, got {save_dir!r} (KEY=VALUE "
                             f"overrides go with -c)")
    if args.class_dim is not None and args.class_dim < 1:
        raise InferenceError(f"--class_dim must be >= 1, got {args.class_dim}")
    ops = default_ops(args.resize_short, args.crop, args.interpolation, args.mean, args.std)
    _setup()
    log = _log()
    export_weights(args.model, args.pretrained_model, save_dir, args.class_dim, args.label_list,
                   ops, softmax=not args.no_softmax, onnx=args.onnx, opset=args.opset, log=log)
    _done(log, save_dir)


def _log():
    from ppcls.utils.logger import get_logger
    return get_logger().info


def _done(log, save_dir):
    log(f"done: python tools/infer.py --model_dir {save_dir} --image <image, folder or list>")


def cli_main():
    """Console-script entry point: user errors print one ``error:`` line and exit 2."""
    return run_cli(main)


if __name__ == "__main__":
    cli_main()

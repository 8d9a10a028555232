"""Convert an official PyTorch checkpoint into Paddle weights for this suite.

  python tools/convert_weights.py -a DLA60 --src dla60-24839fc4.pth --dst pretrained/DLA60.pdparams
  python tools/train.py -c configs/DLA/DLA60.yaml -o pretrained_model=pretrained/DLA60

Reads .pth/.pth.tar (PyTorch, loaded with weights_only=True: no code from the file runs),
.npz or .safetensors with the official names (a `state_dict` wrapper and DataParallel's
`module.` prefix are removed). Writes .pdparams, or .safetensors when --dst ends with it.
Load only checkpoints you trust: .pdparams files are pickles too.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cli import run_cli  # noqa: E402


def save_weights(state, dst):
    """Write {name: ndarray} atomically as .pdparams or .safetensors."""
    import paddle
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = f"{dst}.tmp-{os.getpid()}"
    try:
        if dst.endswith(".safetensors"):
            from safetensors.numpy import save_file
            save_file(state, tmp)
        else:
            paddle.save(state, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-a", "--arch", required=True, help="architecture name, e.g. DLA60 (see tools/paras_flops.py -a all)")
    p.add_argument("--src", required=True, help="official checkpoint (.pth, .pth.tar, .npz, .safetensors)")
    p.add_argument("--dst", required=True, help="output .pdparams (or .safetensors)")
    p.add_argument("--class_dim", type=int, default=None, help="default: the checkpoint's classifier size")
    args = p.parse_args()
    if not args.dst.endswith((".pdparams", ".safetensors")):
        raise SystemExit("error: --dst must end with .pdparams or .safetensors")
    from ppcls.convert import convert_state_dict, load_source
    from ppcls.modeling import get_model_factory
    try:
        get_model_factory(args.arch)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}") from None
    state, report = convert_state_dict(args.arch, load_source(args.src), args.class_dim, source=args.src)
    save_weights(state, args.dst)
    dropped = "; ".join(f"{n} {reason}" for reason, n in report["dropped"].items()) or "none"
    print(f"{args.arch}: converted {report['converted']} tensors ({report['class_dim']} classes) "
          f"from {args.src} to {args.dst}; skipped official keys: {dropped}")
    prefix = args.dst[: -len(".pdparams")] if args.dst.endswith(".pdparams") else args.dst
    print(f"use it with: -o pretrained_model={prefix}")


if __name__ == "__main__":
    run_cli(main)

"""Convert an official PyTorch, timm or PaddleClas checkpoint into Paddle weights for this suite.

  python tools/convert_weights.py -a DLA60 --src dla60-24839fc4.pth --dst pretrained/DLA60.pdparams
  python tools/convert_weights.py -a ResNet50 --src ResNet50_pretrained.pdparams --dst pretrained/ResNet50.pdparams
  python tools/train.py -c configs/DLA/DLA60.yaml -o pretrained_model=pretrained/DLA60

--from auto (default) reads the naming from the keys and says which it found: official PyTorch
(torchvision, the papers' repositories), timm, PaddleClas (ResNet50/101/152, ResNeXt50_32x4d,
ResNeXt101_32x8d_wsl; any of its 2.x / release/2.0 / static-graph namings) or this suite's own
names (PaddleClas's DLA and ReXNet .pdparams: no conversion needed, they load as they are with
-o pretrained_model=; the tool checks them and writes a copy). PaddleClas models that are other
networks (ResNet18/34, MobileNetV2, every _vd) are refused with the reason, exit code 2.

Reads .pth/.pth.tar (PyTorch, loaded with weights_only=True: no code from the file runs),
.npz, .safetensors or .pdparams (pickles checked against an allow-list before loading).
A `state_dict` wrapper and DataParallel's `module.` prefix are removed. Writes .pdparams, or
.safetensors when --dst ends with it. Load only checkpoints you trust.
"""
import argparse
import os

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
    from ppcls.convert import NAMINGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-a", "--arch", required=True,
                   help="architecture name, e.g. DLA60 (see tools/paras_flops.py -a all); "
                        "PaddleClas's ResNeXt101_32x8d_wsl is accepted for our ResNeXt101_32x8d")
    p.add_argument("--src", required=True, help="checkpoint (.pth, .pth.tar, .npz, .safetensors, .pdparams)")
    p.add_argument("--dst", required=True, help="output .pdparams (or .safetensors)")
    p.add_argument("--from", dest="naming", default="auto", choices=NAMINGS,
                   help="the checkpoint's naming (default: auto, detected from its keys)")
    p.add_argument("--class_dim", type=int, default=None, help="default: the checkpoint's classifier size")
    args = p.parse_args()
    if not args.dst.endswith((".pdparams", ".safetensors")):
        raise SystemExit("error: --dst must end with .pdparams or .safetensors")
    from ppcls.convert import convert_checkpoint, load_source
    from ppcls.utils.checkpoint import strip_suffix
    state, report = convert_checkpoint(args.arch, load_source(args.src), args.naming,
                                       args.class_dim, source=args.src)
    save_weights(state, args.dst)
    print(f"{args.src}: detected {report['naming_label']}")
    arch = report["arch"]
    held = report.get("paddleclas_model")
    if held and held != arch:
        arch = f"{arch} (PaddleClas {held})"
    if report["no_conversion_needed"]:
        as_is = strip_suffix(args.src) if args.src.endswith((".pdparams", ".safetensors")) else None
        print(f"{arch}: no conversion needed, {args.src} already has this suite's names "
              f"({report['converted']} tensors checked against {report['arch']}, "
              f"{report['class_dim']} classes)"
              + (f" and loads as is with -o pretrained_model={as_is}" if as_is else "")
              + f"; wrote a copy to {args.dst}")
    else:
        dropped = "; ".join(f"{n} {reason}" for reason, n in report["dropped"].items()) or "none"
        print(f"{arch}: converted {report['converted']} tensors ({report['class_dim']} classes) "
              f"from {args.src} to {args.dst}; skipped source keys: {dropped}")
    print(f"use it with: -o pretrained_model={strip_suffix(args.dst)}")


def cli_main():
    """Console-script entry point: user errors print one ``error:`` line and exit 2."""
    return run_cli(main)


if __name__ == "__main__":
    cli_main()

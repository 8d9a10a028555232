"""Evaluate weights on the recipe's VALID set and print the END line.

  python tools/eval.py -c configs/DLA/DLA60_best.yaml -o pretrained_model=output/DLA60/best_model/ppcls
"""
from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (imports no paddle)

prepare_cpu_env()      # MKL's AVX2 kernels on AMD CPUs: must precede `import paddle`

from ppcls.utils.cli import config_parser, run_cli  # noqa: E402


def main():
    args = config_parser("Evaluate a model on the VALID section of a recipe.", __doc__).parse_args()
    from ppcls.engine.evaluate import run_eval
    from ppcls.engine.recipe import load_config
    cfg = load_config(args.config, args.override)
    cfg["mode"] = "valid"
    run_eval(cfg)


def cli_main():
    """Console-script entry point: user errors print one ``error:`` line and exit 2."""
    return run_cli(main)


if __name__ == "__main__":
    cli_main()

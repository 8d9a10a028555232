"""Evaluate weights on the recipe's VALID set and print the END line.

  python tools/eval.py -c configs/DLA/DLA60_best.yaml -o pretrained_model=output/DLA60/best_model/ppcls
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


if __name__ == "__main__":
    run_cli(main)

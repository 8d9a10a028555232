"""Train a model from a recipe.

  python tools/train.py -c configs/quick_start/DLA46_c_digits.yaml
  python -m paddle.distributed.launch --gpus 0,1,2,3 tools/train.py -c configs/DLA/DLA60_best.yaml
  python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c ...   (CPU processes)
  python tools/train.py -c ... -o checkpoints=output/DLA46_c/3/ppcls           (resume)
  python tools/train.py -c ... -o resume=auto                                   (newest checkpoint)
  python -m paddle.distributed.launch --nnodes 2 --master NODE0_IP:PORT --rank 0 --gpus 0,1,2,3 \\
      tools/train.py -c ... -o resume=auto         (node 0 of 2; --rank 1 on node 1; README "Multi-node")
"""
from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (imports no paddle)

prepare_cpu_env()      # MKL's AVX2 kernels on AMD CPUs: must precede `import paddle`

from ppcls.utils.cli import config_parser, run_cli  # noqa: E402


def main():
    args = config_parser("Train an image classifier from a YAML recipe.", __doc__).parse_args()
    from ppcls.engine.train import train
    from ppcls.engine.recipe import load_config
    cfg = load_config(args.config, args.override)
    try:
        train(cfg)
    except Exception as e:
        from ppcls.engine.env import announce_failure
        announce_failure(e)             # distributed: point the launcher's output at this rank
        raise


def cli_main():
    """Console-script entry point: user errors print one ``error:`` line and exit 2."""
    return run_cli(main)


if __name__ == "__main__":
    cli_main()

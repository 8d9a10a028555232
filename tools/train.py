"""Train a model from a recipe.

  python tools/train.py -c configs/quick_start/DLA46_c_digits.yaml
  python -m paddle.distributed.launch --gpus 0,1,2,3 tools/train.py -c configs/DLA/DLA60_best.yaml
  python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c ...   (CPU processes)
  python tools/train.py -c ... -o checkpoints=output/DLA46_c/3/ppcls           (resume)
  python tools/train.py -c ... -o resume=auto                                   (newest checkpoint)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppcls.utils.cli import config_parser, run_cli  # noqa: E402


def main():
    args = config_parser("Train an image classifier from a YAML recipe.", __doc__).parse_args()
    from ppcls.engine.train import train
    from ppcls.utils.config import load_config
    cfg = load_config(args.config, args.override)
    train(cfg)


if __name__ == "__main__":
    run_cli(main)

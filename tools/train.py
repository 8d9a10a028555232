"""Train a model from a recipe: `python tools/train.py -h`.

The program is ppcls/cli/train.py (installed with pip: `ppcls-train`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# importing it sets the CPU environment before paddle loads (ppcls.utils.cpu_env)
from ppcls.cli.train import cli_main, main  # noqa: E402,F401

if __name__ == "__main__":
    cli_main()

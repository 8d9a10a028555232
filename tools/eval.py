"""Evaluate weights on a recipe's VALID set: `python tools/eval.py -h`.

The program is ppcls/cli/eval.py (installed with pip: `ppcls-eval`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# importing it sets the CPU environment before paddle loads (ppcls.utils.cpu_env)
from ppcls.cli.eval import cli_main, main  # noqa: E402,F401

if __name__ == "__main__":
    cli_main()

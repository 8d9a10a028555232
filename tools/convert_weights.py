"""Convert an official PyTorch, timm or PaddleClas checkpoint into Paddle weights:
`python tools/convert_weights.py -h`.

The program is ppcls/cli/convert_weights.py (installed with pip: `ppcls-convert`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppcls.cli.convert_weights import cli_main, main  # noqa: E402,F401

if __name__ == "__main__":
    cli_main()

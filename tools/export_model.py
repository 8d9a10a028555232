"""Export weights for deployment (Paddle Inference, ONNX): `python tools/export_model.py -h`.

The program is ppcls/cli/export_model.py (installed with pip: `ppcls-export`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# importing it sets the CPU environment before paddle loads (ppcls.utils.cpu_env)
from ppcls.cli.export_model import cli_main, main  # noqa: E402,F401

if __name__ == "__main__":
    cli_main()

"""ppcls-repro: PaddlePaddle reproductions of DLA, ECA-Net, RLA-Net, ED-Net and ReXNet.

The public API (README "Python API")::

    import ppcls
    ppcls.list_models("DLA*")
    model = ppcls.build_model("DLA60", pretrained="pretrained/DLA60.pdparams")
    cfg = ppcls.load_config("configs/quick_start/DLA46_c_digits.yaml", {"epochs": 2})
    ppcls.train(cfg)
    ppcls.evaluate(cfg, weights="output/DLA46_c/best_model/ppcls")
    ppcls.export("DLA60", weights="pretrained/DLA60", out_dir="inference/DLA60", onnx=True)

``import ppcls`` imports neither paddle nor the subpackages; each function imports what it
needs when called. It does not change the process environment either: to get MKL's AVX2 kernels
on AMD CPUs call ``ppcls.prepare_cpu_env()`` before anything imports paddle (the tools do).
"""
from .api import ModelError, build_model, evaluate, export, list_models, load_config, train
from .utils.cpu_env import prepare_cpu_env
from .utils.errors import PaddleNotInstalledError, UserError

__version__ = "0.1.0"
__all__ = ["build_model", "list_models", "load_config", "train", "evaluate", "export",
           "prepare_cpu_env", "ModelError", "PaddleNotInstalledError", "UserError", "__version__"]

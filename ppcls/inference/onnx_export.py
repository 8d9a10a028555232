"""ONNX: convert an exported program with paddle2onnx and run it with ONNX Runtime (both optional:
``pip install paddle2onnx onnxruntime``)."""
import os

import paddle

from .preprocess import InferenceError

PADDLE2ONNX_HINT = "pip install paddle2onnx onnxruntime"


def onnx_available():
    """None when paddle2onnx can be imported, else the reason."""
    try:
        import paddle2onnx  # noqa: F401
    except ImportError as e:
        return f"paddle2onnx is not installed ({e}); {PADDLE2ONNX_HINT}"
    return None


def convert_onnx(prog, params, onnx_file, opset=13):
    """paddle2onnx: the program file (PIR .json or .pdmodel) -> ONNX.

    paddle2onnx >= 2.0 reads Paddle 3's PIR json. Its default post-pass (polygraphy constant
    folding) pip-installs packages at run time, so it is switched off: ONNX Runtime folds
    constants itself when it loads the model."""
    reason = onnx_available()
    if reason:
        raise InferenceError(f"--onnx: {reason}")
    import paddle2onnx
    major = int(paddle2onnx.__version__.split(".")[0])
    if prog.endswith(".json") and major < 2:
        raise InferenceError(f"--onnx: paddle2onnx {paddle2onnx.__version__} cannot read Paddle "
                             f"{paddle.__version__}'s PIR program ({os.path.basename(prog)}); "
                             f"pip install 'paddle2onnx>=2.0'")
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    try:
        paddle2onnx.export(prog, params, onnx_file, opset_version=opset, auto_upgrade_opset=True,
                           enable_onnx_checker=True, optimize_tool="None")
    except Exception as e:  # noqa: BLE001 - paddle2onnx logs and re-raises many kinds
        raise InferenceError(f"--onnx: paddle2onnx {paddle2onnx.__version__} could not convert "
                             f"{os.path.basename(prog)}: {type(e).__name__}: {e}") from None
    if not os.path.isfile(onnx_file) or os.path.getsize(onnx_file) == 0:
        raise InferenceError(f"--onnx: paddle2onnx {paddle2onnx.__version__} wrote no model for "
                             f"{os.path.basename(prog)} (see its log above)")


def onnxruntime_predict_once(onnx_file, x, threads=1):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(onnx_file, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]

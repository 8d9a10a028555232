"""Export a trained model for deployment: Paddle inference model + inference.yml (+ ONNX).

Layout of an export directory::

    inference.json | inference.pdmodel   the program (PIR json with Paddle >= 3 by default)
    inference.pdiparams                  the weights
    inference.yml                        preprocessing, labels, input shape (read by tools/infer.py)
    inference.onnx                       with --onnx (paddle2onnx)

The program takes a float32 NCHW batch (dynamic batch and, when the model allows it, dynamic
height/width) and returns class probabilities (softmax appended; ``softmax=False`` keeps logits).
Every export is checked before it is put in place: Paddle Inference (and ONNX Runtime, when the
ONNX file is written and onnxruntime is installed) must reproduce the dygraph model's output on two
random images within 1e-3 of the largest output (the measured error is logged; it is typically
1e-6..1e-5).
"""
import logging
import os
import re
import shutil
import time

import numpy as np
import paddle
import yaml

from ..modeling import build_model, get_model_factory
from ..modeling.distillation import student_state
from ..utils import checkpoint as ckpt
from .preprocess import (InferenceError, channel_order, describe, output_hw)

logger = logging.getLogger("ppcls")

MODEL_PREFIX = "inference"
YML = "inference.yml"
ONNX_FILE = "inference.onnx"
SENTINEL_CLASSES = 997      # a class count no layer width equals: marks the classifier's tensors
# Export-time gate against miscompiled programs (wrong fusions, shape specialisation give errors
# of order 1e-1); float32 rounding through a deep network on random pixels stays far below it.
CHECK_RTOL = 1e-3
PADDLE2ONNX_HINT = "pip install paddle2onnx onnxruntime"


def rel_err(a, b):
    """max |a - b| relative to the largest |b| (both arrays of the same shape)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# ----------------------------------------------------------------------------- weights
def build(arch, class_dim, params=None):
    try:
        get_model_factory(arch)
    except KeyError as e:
        raise InferenceError(e.args[0]) from None
    try:
        return build_model(arch, class_dim=class_dim, **dict(params or {}))
    except TypeError as e:
        raise InferenceError(f"ARCHITECTURE.params do not fit {arch}: {e}") from None


def head_axes(arch, params=None):
    """{state key: (axis, shape)} of the tensors whose size is the class count (the classifier's),
    found by building the model with a class count no layer width equals."""
    with paddle.no_grad():
        model = build(arch, SENTINEL_CLASSES, params)
    out = {}
    for key, tensor in model.state_dict().items():
        shape = list(tensor.shape)
        if SENTINEL_CLASSES in shape:
            out[key] = (shape.index(SENTINEL_CLASSES), shape)
    return out


def checkpoint_classes(state, heads):
    """(class count, key, shape) read from the classifier tensors of ``state``, or None when the
    file has no tensor of the classifier's name and layout (fit_state_dict then reports it)."""
    found = []
    for key, (axis, shape) in heads.items():
        if key not in state:
            continue
        got = list(np.shape(state[key]))
        if len(got) == len(shape) and all(g == s for i, (g, s) in enumerate(zip(got, shape))
                                          if i != axis):
            found.append((got[axis], key, got))
    if not found:
        return None
    counts = {n for n, _, _ in found}
    if len(counts) > 1:
        raise ckpt.CheckpointError("classifier tensors disagree on the class count: " + ", ".join(
            f"{k} {s}" for _, k, s in found))
    best = max(found, key=lambda f: len(f[2]))          # the weight rather than the bias
    return int(best[0]), best[1], best[2]


def load_model_for_export(arch, weights, class_dim=None, params=None, class_source="--class_dim"):
    """Build ``arch`` with the checkpoint's class count and load ``weights`` strictly.

    ``class_dim`` (from the recipe or the command line) must agree with the checkpoint; when it
    is None the checkpoint decides. Returns (model in eval mode, class count). A distillation
    checkpoint (``teacher.*``, ``student.*``) gives its student: ``arch`` is the student's."""
    state = student_state(ckpt.load_params_file(weights))
    file = ckpt._strip_suffix(weights) + ".pdparams"
    heads = head_axes(arch, params)
    found = checkpoint_classes(state, heads)
    if found is not None:
        n, key, shape = found
        if class_dim is not None and class_dim != n:
            # weights of another architecture are the real problem: name their keys first
            ckpt.fit_state_dict(build(arch, n, params), state, file)
            raise ckpt.CheckpointError(
                f"{file} has {n} classes ({key} {shape}) but {class_source} is {class_dim}; "
                f"set {class_source}={n} (or export the checkpoint that was trained with "
                f"{class_dim} classes)")
        class_dim = n
    elif class_dim is None:
        # no classifier tensor in the file: fit_state_dict below names the missing keys
        class_dim = 1000
    model = build(arch, class_dim, params)
    usable, _ = ckpt.fit_state_dict(model, state, file)
    model.set_state_dict(usable)
    model.eval()
    return model, class_dim


def label_names_from_file(path, class_num, source="label_list"):
    from ..data.dataset import read_label_list
    if not os.path.isfile(path):
        raise InferenceError(f"{source}: label list not found: {path} (one `id name` or one name "
                             f"per line)")
    names = read_label_list(path)
    extra = sorted(i for i in names if not 0 <= i < class_num)
    if extra:
        raise InferenceError(f"{source}: {path} names class id {extra[0]} but the model has "
                             f"{class_num} classes (ids 0..{class_num - 1})")
    return [str(names.get(i, i)) for i in range(class_num)]


# ----------------------------------------------------------------------------- program
class _Exported(paddle.nn.Layer):
    def __init__(self, model, softmax):
        super().__init__()
        self.model = model
        self.softmax = softmax

    def forward(self, x):
        out = self.model(x)
        if self.softmax:
            out = paddle.nn.functional.softmax(out, axis=-1)
        return out


def _save_program(model, prefix, softmax, shape):
    layer = _Exported(model, softmax)
    layer.eval()
    spec = [paddle.static.InputSpec(list(shape), "float32", name="x")]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    paddle.jit.save(static, prefix)


def model_files(directory):
    """(program file, params file) of an export directory, .json (PIR) or .pdmodel."""
    for ext in (".json", ".pdmodel"):
        prog = os.path.join(directory, MODEL_PREFIX + ext)
        if os.path.isfile(prog):
            return prog, os.path.join(directory, MODEL_PREFIX + ".pdiparams")
    return None, None


# Paddle Inference passes that miscompile models of this repo. The transposed-conv + BatchNorm
# fusion scales a grouped conv2d_transpose weight ([in, out/groups, k, k]) as if it were
# [out, ...]: Paddle 3.3.1 fails to load ED-Net exports ("Broadcast dimension mismatch ... X =
# [64, 3, 8, 3] ... Y = [256, 1, 1, 1]"), and Paddle's own tests skip groups > 1 for this pass
# ("there is diff when group > 1", PaddlePaddle/Paddle#37799). Deleting an absent pass is a no-op.
BROKEN_PASSES = ("conv2d_transpose_bn_fuse_pass", "conv2d_transpose_bias_bn_fuse_pass",
                 "conv_transpose_bn_fuse_pass", "conv_transpose_eltwiseadd_bn_fuse_pass")


def paddle_config(prog, params):
    """paddle.inference.Config for a .json (PIR) or .pdmodel program, quiet, broken passes off."""
    from paddle import inference
    config = inference.Config(prog, params)
    config.disable_glog_info()
    for name in BROKEN_PASSES:
        config.delete_pass(name)
    return config


def paddle_predict_once(directory, x, threads=1):
    """Run the exported program with Paddle Inference (CPU, oneDNN as deployed) on ``x``."""
    prog, params = model_files(directory)
    config = paddle_config(prog, params)
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.enable_onednn()
    predictor = paddle.inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def _last_line(e, limit=300):
    """The informative line of an exception (dy2static puts the original error last)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"\w*(Error|Exception)\b", line)]
    if errors:
        return errors[-1][:limit]
    return f"{type(e).__name__}: {(lines[-1] if lines else '')[:limit]}"


def _check_input(ops, hw):
    """Two random uint8 images at the model's input size, normalised by the export's own
    NormalizeImage/ToCHWImage: inputs in the range the model sees."""
    from ..data.transforms import apply_transforms, build_transforms
    h, w = hw or (224, 224)
    tail = build_transforms([op for op in ops if next(iter(op)) in ("NormalizeImage", "ToCHWImage")])
    rng = np.random.RandomState(0)
    return np.stack([apply_transforms(tail, rng.randint(0, 256, (h, w, 3), dtype=np.uint8))
                     for _ in range(2)]).astype("float32")


def _reference(model, x, softmax):
    with paddle.no_grad():
        out = model(paddle.to_tensor(x))
        if softmax:
            out = paddle.nn.functional.softmax(out, axis=-1)
    return out.numpy()


# ----------------------------------------------------------------------------- ONNX
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


# ----------------------------------------------------------------------------- export
def check_target(save_dir):
    """Refuse to replace a non-empty folder that is not an export (it would be deleted)."""
    if os.path.isfile(save_dir):
        raise InferenceError(f"save_inference_dir {save_dir} is a file; give a folder")
    if os.path.isdir(save_dir) and os.listdir(save_dir) and \
            not os.path.isfile(os.path.join(save_dir, YML)):
        raise InferenceError(f"save_inference_dir {save_dir} is a non-empty folder without "
                             f"{YML} (not an earlier export); choose a new or empty folder")


def _replace_dir(tmp, save_dir):
    old = None
    if os.path.exists(save_dir):
        old = f"{save_dir}.old-{os.getpid()}"
        os.replace(save_dir, old)
    os.replace(tmp, save_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def export(model, save_dir, ops, label_names, model_name, softmax=True, onnx=False, opset=13,
           weights="", log=print, arch_params=None):
    """Write ``save_dir`` (atomically: built under a temporary name, checked, then renamed).

    ``model``: a dygraph model in eval mode; ``ops``: explicit transform_ops (preprocess.py);
    ``label_names``: one name per class. Returns the dict written to inference.yml."""
    save_dir = os.path.normpath(save_dir)
    check_target(save_dir)
    class_num = len(label_names)
    if onnx:
        reason = onnx_available()
        if reason:
            raise InferenceError(f"--onnx: {reason}")
    parent = os.path.dirname(os.path.abspath(save_dir))
    tmp = f"{save_dir}.tmp-{os.getpid()}"
    try:
        os.makedirs(parent, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    except OSError as e:
        raise InferenceError(f"cannot write {save_dir}: {e.strerror or e}") from None
    try:
        info = _export_into(tmp, model, ops, label_names, model_name, softmax, onnx, opset,
                            weights, class_num, log, arch_params)
        _replace_dir(tmp, save_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _export_into(tmp, model, ops, label_names, model_name, softmax, onnx, opset, weights,
                 class_num, log, arch_params):
    prefix = os.path.join(tmp, MODEL_PREFIX)
    hw = output_hw(ops)
    x = _check_input(ops, hw)
    ref = _reference(model, x, softmax)
    if ref.shape != (2, class_num):
        raise InferenceError(f"{model_name} returns {list(ref.shape[1:])} outputs per image, "
                             f"expected {class_num} classes")
    tic = time.time()
    shape, dynamic_error = [None, 3, None, None], None
    try:
        _save_program(model, prefix, softmax, shape)
        err = rel_err(paddle_predict_once(tmp, x), ref)
        if err > CHECK_RTOL:
            raise InferenceError(f"dynamic-shape program differs from dygraph by {err:.2e}")
    except Exception as e:  # noqa: BLE001 - any failure of the dynamic trace: try a fixed size
        if hw is None:
            raise InferenceError(
                f"{model_name} cannot be exported with a dynamic input size ({_last_line(e)}) "
                f"and the preprocessing has no fixed output size; "
                f"add CropImage (or ResizeImage size) to the eval transforms") from None
        dynamic_error = _last_line(e)
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        shape = [None, 3, hw[0], hw[1]]
        _save_program(model, prefix, softmax, shape)
        err = rel_err(paddle_predict_once(tmp, x), ref)
        if err > CHECK_RTOL:
            raise InferenceError(f"the exported program differs from the dygraph model by "
                                 f"{err:.2e} (relative), more than {CHECK_RTOL}; not exported")
    prog, params = model_files(tmp)
    log(f"saved {os.path.basename(prog)} + {os.path.basename(params)} in {time.time() - tic:.1f}s; "
        f"input {['N', 3, shape[2] or 'H', shape[3] or 'W']}"
        + (f" (fixed size: a dynamic trace failed: {dynamic_error})" if dynamic_error else "")
        + f"; Paddle Inference == dygraph within {err:.1e} (relative)")
    info = {
        "Global": {
            "model_name": model_name,
            "class_num": class_num,
            "softmax": bool(softmax),
            "model_file": os.path.basename(prog),
            "params_file": os.path.basename(params),
            "input_name": "x",
            "input_shape": [-1, 3, shape[2] or -1, shape[3] or -1],
            "input_layout": "NCHW",
            "channel_order": channel_order(ops),
            "dtype": "float32",
            "paddle_version": paddle.__version__,
            # the source checkpoint, for tools/infer.py --backend dygraph (reference / timing)
            "weights": os.path.abspath(ckpt._strip_suffix(weights)) + ".pdparams" if weights else "",
            "arch_params": dict(arch_params or {}),
        },
        "PreProcess": {"transform_ops": ops},
        "PostProcess": {"name": "Topk", "topk": min(5, class_num), "label_list": list(label_names)},
    }
    if onnx:
        tic = time.time()
        onnx_file = os.path.join(tmp, ONNX_FILE)
        convert_onnx(prog, params, onnx_file, opset)
        info["Global"]["onnx_file"] = ONNX_FILE
        try:
            import onnxruntime  # noqa: F401 - only: is it installed?
        except ImportError:
            log(f"wrote {ONNX_FILE} in {time.time() - tic:.1f}s (not checked: onnxruntime is not "
                f"installed; pip install onnxruntime)")
        else:
            err = rel_err(onnxruntime_predict_once(onnx_file, x), ref)
            if err > CHECK_RTOL:
                raise InferenceError(f"the ONNX model differs from the dygraph model by {err:.2e} "
                                     f"(relative), more than {CHECK_RTOL}; not exported")
            log(f"wrote {ONNX_FILE} in {time.time() - tic:.1f}s; ONNX Runtime == dygraph within "
                f"{err:.1e} (relative)")
    with open(os.path.join(tmp, YML), "w", encoding="utf-8") as f:
        f.write("# Written by tools/export_model.py. tools/infer.py builds its preprocessing from\n"
                "# PreProcess.transform_ops with the operator classes of training-time evaluation\n"
                "# (ppcls/data/transforms.py). Input: float32 NCHW, "
                f"{channel_order(ops)}; output: {'softmax probabilities' if softmax else 'logits'}"
                f" for {class_num} classes.\n")
        yaml.safe_dump(info, f, sort_keys=False, default_flow_style=None, allow_unicode=True,
                       width=100)
    log(f"preprocessing: {describe(ops)}")
    return info

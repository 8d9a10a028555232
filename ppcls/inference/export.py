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

from ..modeling.distillation import is_distill_name, split_distill_name
from ..utils import checkpoint as ckpt
from .onnx_export import convert_onnx, onnx_available, onnxruntime_predict_once
from .preprocess import (InferenceError, channel_order, default_ops, describe, export_ops, output_hw)
from .weights import load_model_for_export

logger = logging.getLogger("ppcls")

MODEL_PREFIX = "inference"
YML = "inference.yml"
ONNX_FILE = "inference.onnx"
# Export-time gate against miscompiled programs (wrong fusions, shape specialisation give errors
# of order 1e-1); float32 rounding through a deep network on random pixels stays far below it.
CHECK_RTOL = 1e-3


def rel_err(a, b):
    """max |a - b| relative to the largest |b| (both arrays of the same shape)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


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


def _weights_file(weights):
    if not weights:
        return ""
    if weights.endswith(".safetensors"):
        return os.path.abspath(weights)
    return os.path.abspath(ckpt.strip_suffix(weights)) + ".pdparams"


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
            "weights": _weights_file(weights),
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


# ----------------------------------------------------------------------------- entry points
def resolve_labels(labels, class_num, source):
    """Label names: None -> class ids, a path -> the `id name` file, a list -> the names."""
    if labels is None:
        return [str(i) for i in range(class_num)]
    if isinstance(labels, (str, os.PathLike)):
        return label_names_from_file(os.fspath(labels), class_num, source)
    names = [str(n) for n in labels]
    if len(names) != class_num:
        raise InferenceError(f"{source}: {len(names)} label names for a model of {class_num} "
                             f"classes")
    return names


def export_recipe(cfg, save_dir=None, softmax=True, onnx=False, opset=13, log=print):
    """Export the model a loaded recipe describes: ``ARCHITECTURE`` with ``pretrained_model``
    (its class count must equal ``classes_num``), the eval preprocessing ``VALID.transforms``
    and the names of ``VALID.label_list``; into ``save_dir`` (default ``save_inference_dir``).
    ``softmax`` is and-ed with the recipe's ``export_softmax``. Returns the inference.yml dict."""
    src = cfg["_source"]
    name, params = cfg["ARCHITECTURE"]["name"], cfg["ARCHITECTURE"]["params"]
    arch = split_distill_name(name)[1] if cfg.get("use_distillation") else name
    if not cfg["pretrained_model"]:
        raise InferenceError(f"{src}: export needs weights: -o pretrained_model=output/"
                             f"{name}/best_model/ppcls")
    if cfg["VALID"] is None:
        raise InferenceError(f"{src}: VALID.transforms is needed (the eval preprocessing is "
                             f"exported with the model); or use the -m form")
    ops = export_ops(cfg["VALID"]["transforms"], src)
    # a distillation recipe exports its student, from the combined checkpoint or ppcls_student
    hint = (f"with a distillation recipe, export takes the student ({arch}): give -o "
            f"pretrained_model=<model_save_dir>/{name}/best_model/ppcls (the combined "
            f"checkpoint) or .../best_model/ppcls_student; ")
    if not isinstance(cfg["pretrained_model"], str):
        raise InferenceError(hint + f"{src}: pretrained_model is a list")
    try:
        model, n = load_model_for_export(arch, cfg["pretrained_model"], cfg["classes_num"],
                                         params, class_source="classes_num")
    except ckpt.CheckpointError as e:
        if not cfg.get("use_distillation"):
            raise
        raise InferenceError(hint + str(e)) from None
    labels = resolve_labels(cfg["VALID"]["label_list"] or None, n, f"{src}: VALID.label_list")
    return _export_logged(model, save_dir or cfg["save_inference_dir"], ops, labels, arch,
                          cfg["export_softmax"] and softmax, onnx, opset, cfg["pretrained_model"],
                          log, params)


def export_layer(model, save_dir, ops=None, labels=None, class_dim=None, softmax=True, onnx=False,
                 opset=13, log=print, label_source="labels"):
    """Export a dygraph model with its current parameters (no source checkpoint is recorded,
    so ``tools/infer.py --backend dygraph`` is not available for it); its class count is the
    width of its output. Arguments as ``export_weights``. Returns the inference.yml dict."""
    ops = default_ops() if ops is None else ops
    was_training = model.training
    model.eval()
    try:
        h, w = output_hw(ops) or (224, 224)
        with paddle.no_grad():
            n = int(model(paddle.zeros([1, 3, h, w])).shape[-1])
        if class_dim is not None and class_dim != n:
            raise InferenceError(f"the model has {n} outputs but class_dim is {class_dim}")
        return _export_logged(model, save_dir, ops, resolve_labels(labels, n, label_source),
                              type(model).__name__, softmax, onnx, opset, "", log)
    finally:
        if was_training:
            model.train()


def export_weights(arch, weights, save_dir, class_dim=None, labels=None, ops=None, softmax=True,
                   onnx=False, opset=13, log=print, label_source="--label_list"):
    """Export the registered model ``arch`` with ``weights`` (class count from the file;
    ``class_dim`` must agree when given), ``ops`` as preprocessing (default: ``default_ops()``,
    resize_short 256, center crop 224, ImageNet mean/std) and ``labels`` (None: class ids; a
    label-list file; or a list of names). Returns the inference.yml dict."""
    ops = default_ops() if ops is None else ops
    if is_distill_name(arch):           # Teacher_distill_Student: export the student
        arch = split_distill_name(arch)[1]
    model, n = load_model_for_export(arch, weights, class_dim)
    return _export_logged(model, save_dir, ops, resolve_labels(labels, n, label_source), arch, softmax,
                          onnx, opset, weights, log)


def _export_logged(model, save_dir, ops, labels, arch, softmax, onnx, opset, weights, log,
                   arch_params=None):
    log(f"exporting {arch} ({len(labels)} classes, {'softmax' if softmax else 'logits'})"
        + (f" from {weights}" if weights else "") + f" to {save_dir}")
    return export(model, save_dir, ops, labels, arch, softmax=softmax, onnx=onnx, opset=opset,
                  weights=weights, log=log, arch_params=arch_params)

"""Predictor over an export directory (tools/export_model.py): Paddle Inference or ONNX Runtime.

Preprocessing comes from the export's inference.yml and is built with the operator classes of
training-time evaluation (``ppcls.data.transforms``), so a prediction sees exactly the tensor
``tools/eval.py`` would feed the model.
"""
import os
import statistics
import time

import numpy as np
import yaml

from ..data.dataset import IMAGE_EXTENSIONS
from ..data.transforms import BadImageError, apply_transforms
from .export import ONNX_FILE, YML, model_files, paddle_config
from .onnx_export import PADDLE2ONNX_HINT
from .preprocess import InferenceError, build_ops, channel_order

BACKENDS = ("paddle", "onnxruntime", "dygraph")


# ----------------------------------------------------------------------------- export dir
def load_export(model_dir):
    """Validated inference.yml of ``model_dir`` plus the program/params paths."""
    if not os.path.isdir(model_dir):
        raise InferenceError(f"--model_dir {model_dir} not found (export one with "
                             f"tools/export_model.py)")
    path = os.path.join(model_dir, YML)
    if not os.path.isfile(path):
        raise InferenceError(f"{path} not found: {model_dir} is not an export of "
                             f"tools/export_model.py (it writes the preprocessing there)")
    try:
        with open(path, encoding="utf-8") as f:
            info = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise InferenceError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(info, dict) or not all(isinstance(info.get(k), dict) for k in
                                             ("Global", "PreProcess", "PostProcess")):
        raise InferenceError(f"{path}: expected the sections Global, PreProcess and PostProcess")
    g = info["Global"]
    for key in ("class_num", "input_shape", "channel_order", "input_layout"):
        if key not in g:
            raise InferenceError(f"{path}: Global.{key} is missing")
    ops, explicit = build_ops(info["PreProcess"].get("transform_ops"), path)
    if g["channel_order"] != channel_order(explicit):
        raise InferenceError(f"{path}: Global.channel_order is {g['channel_order']} but "
                             f"DecodeImage.to_rgb gives {channel_order(explicit)}; make them agree")
    if g["input_layout"] != "NCHW":
        raise InferenceError(f"{path}: Global.input_layout must be NCHW, got {g['input_layout']}")
    labels = info["PostProcess"].get("label_list") or [str(i) for i in range(g["class_num"])]
    if len(labels) != g["class_num"]:
        raise InferenceError(f"{path}: PostProcess.label_list has {len(labels)} names but "
                             f"Global.class_num is {g['class_num']}")
    prog, params = model_files(model_dir)
    if prog is None:
        raise InferenceError(f"{model_dir}: no inference.json or inference.pdmodel (re-export with "
                             f"tools/export_model.py)")
    if not os.path.isfile(params):
        raise InferenceError(f"{params} not found (the export is incomplete; re-export)")
    return {"info": info, "ops": ops, "labels": [str(x) for x in labels], "prog": prog,
            "params": params, "yml": path}


# ----------------------------------------------------------------------------- inputs
def list_inputs(image, data_dir=None):
    """``--image``: an image, a folder (searched recursively) or a list of ``path [label]``.

    Returns [(path, label or None)]; every path is checked to exist first."""
    if not image:
        raise InferenceError("no input: give --image PATH (an image, a folder or a file list)")
    if os.path.isdir(image):
        items = [(os.path.join(d, f), None) for d, _, files in sorted(os.walk(image))
                 for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not items:
            raise InferenceError(f"--image {image}: no images ({', '.join(IMAGE_EXTENSIONS)}) in "
                                 f"this folder")
        return items
    if not os.path.isfile(image):
        raise InferenceError(f"--image {image} not found")
    if image.lower().endswith(IMAGE_EXTENSIONS):
        return [(image, None)]
    return _read_list(image, data_dir)


def _read_list(path, data_dir):
    root = data_dir if data_dir is not None else os.path.dirname(os.path.abspath(path))
    items, missing = [], []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise InferenceError(f"--image {path} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) "
                             f"nor a text file list") from None
    for lineno, line in enumerate(lines, 1):
        parts = line.strip().split()
        if not parts:
            continue
        label = None
        if len(parts) >= 2 and parts[-1].lstrip("-").isdigit():
            label, parts = int(parts[-1]), parts[:-1]
        rel = " ".join(parts)
        full = rel if os.path.isabs(rel) else os.path.join(root, rel)
        if not os.path.isfile(full):
            missing.append(f"line {lineno}: {full}")
        items.append((full, label))
    if missing:
        raise InferenceError(f"{path}: {len(missing)} image(s) not found, first: {missing[0]}"
                             + ("" if data_dir else f" (paths are relative to the list's folder; "
                                                    f"set --data_dir)"))
    if not items:
        raise InferenceError(f"{path}: the file list is empty")
    return items


# ----------------------------------------------------------------------------- backends
def _gpu_available_paddle():
    from ..utils.device import gpu_available
    return gpu_available()


def _resolve_gpu(use_gpu, available, what):
    if use_gpu is True and not available:
        raise InferenceError(f"--use_gpu true but {what} sees no GPU; use --use_gpu auto or false")
    return available if use_gpu == "auto" else bool(use_gpu)


class PaddleBackend:
    name = "paddle"

    def __init__(self, prog, params, use_gpu="auto", use_tensorrt=False, cpu_threads=1,
                 enable_mkldnn=True, batch_size=1, input_shape=None):
        from paddle import inference
        self.gpu = _resolve_gpu(use_gpu, _gpu_available_paddle(), "Paddle")
        if use_tensorrt and not self.gpu:
            raise InferenceError("--use_tensorrt needs a GPU (CUDA build of Paddle with TensorRT "
                                 "and a visible GPU); this run is on CPU: drop --use_tensorrt")
        config = paddle_config(prog, params)
        if self.gpu:
            config.enable_use_gpu(500, 0)
            if use_tensorrt:
                try:
                    config.enable_tensorrt_engine(
                        workspace_size=1 << 30, max_batch_size=batch_size, min_subgraph_size=3,
                        precision_mode=inference.PrecisionType.Float32, use_static=False,
                        use_calib_mode=False)
                    # min / max / optimal shapes: a fixed side stays fixed, a dynamic one 32..1024
                    hw = [(d, d, d) if d > 0 else (32, 1024, 224)
                          for d in (input_shape or [-1] * 4)[2:]]
                    config.set_trt_dynamic_shape_info(
                        {"x": [1, 3, hw[0][0], hw[1][0]]},
                        {"x": [batch_size, 3, hw[0][1], hw[1][1]]},
                        {"x": [batch_size, 3, hw[0][2], hw[1][2]]})
                except Exception as e:  # noqa: BLE001
                    raise InferenceError(f"--use_tensorrt: this Paddle cannot use TensorRT: {e}") from None
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(cpu_threads)
            if enable_mkldnn:
                config.enable_onednn()
            else:
                config.disable_onednn()     # Paddle 3 turns oneDNN on by default on CPU
        self.mkldnn = bool(enable_mkldnn and not self.gpu)
        self.trt = bool(use_tensorrt)
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def describe(self):
        if self.gpu:
            return "Paddle Inference, GPU" + (" + TensorRT" if self.trt else "")
        return "Paddle Inference, CPU" + (" + oneDNN" if self.mkldnn else "")

    def __call__(self, batch):
        self.input.reshape(list(batch.shape))
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        return self.output.copy_to_cpu()


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, onnx_file, use_gpu="auto", use_tensorrt=False, cpu_threads=1, **_):
        try:
            import onnxruntime as ort
        except ImportError:
            raise InferenceError(f"--backend onnxruntime needs onnxruntime: {PADDLE2ONNX_HINT}") from None
        if not os.path.isfile(onnx_file):
            raise InferenceError(f"{onnx_file} not found: export with --onnx "
                                 f"(tools/export_model.py ... --onnx)")
        available = ort.get_available_providers()
        self.gpu = _resolve_gpu(use_gpu, "CUDAExecutionProvider" in available, "onnxruntime")
        if use_tensorrt and "TensorrtExecutionProvider" not in available:
            raise InferenceError("--use_tensorrt: this onnxruntime has no TensorRT provider "
                                 "(install onnxruntime-gpu with TensorRT, on a GPU machine)")
        providers = (["TensorrtExecutionProvider"] if use_tensorrt else []) + \
            (["CUDAExecutionProvider"] if self.gpu else []) + ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cpu_threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_file, opts, providers=providers)
        self.providers = self.session.get_providers()
        self.input_name = self.session.get_inputs()[0].name

    def describe(self):
        return "ONNX Runtime, " + "/".join(p.replace("ExecutionProvider", "") for p in self.providers)

    def __call__(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]


class DygraphBackend:
    """The source model in Paddle's eager mode (Global.model_name + Global.weights), as
    tools/eval.py runs it: a reference for the exported backends' outputs and speed. (Global
    oneDNN flags are left alone: they would leak into the rest of the process.)"""
    name = "dygraph"

    def __init__(self, info, use_gpu="auto", cpu_threads=1):
        import paddle
        from ..utils.device import set_cpu_threads
        from ..modeling import build_model
        from ..utils.checkpoint import fit_state_dict, load_params_file
        g = info["Global"]
        weights = g.get("weights") or ""
        if not weights or not os.path.isfile(weights):
            raise InferenceError(f"--backend dygraph needs the source checkpoint recorded in "
                                 f"inference.yml (Global.weights: {weights or 'empty'}), which is "
                                 f"not there; use --backend paddle or onnxruntime")
        self.gpu = _resolve_gpu(use_gpu, _gpu_available_paddle(), "Paddle")
        paddle.set_device("gpu" if self.gpu else "cpu")
        if not self.gpu:
            set_cpu_threads(cpu_threads)
        self.model = build_model(g["model_name"], class_dim=g["class_num"],
                                 **dict(g.get("arch_params") or {}))
        usable, _ = fit_state_dict(self.model, load_params_file(weights), weights)
        self.model.set_state_dict(usable)
        self.model.eval()
        self.softmax = bool(g.get("softmax", True))
        self.paddle = paddle

    def describe(self):
        return "Paddle dygraph, " + ("GPU" if self.gpu else "CPU")

    def __call__(self, batch):
        with self.paddle.no_grad():
            out = self.model(self.paddle.to_tensor(batch))
            if self.softmax:
                out = self.paddle.nn.functional.softmax(out, axis=-1)
        return out.numpy()


# ----------------------------------------------------------------------------- predictor
class Predictor:
    def __init__(self, model_dir, backend="paddle", use_gpu="auto", use_tensorrt=False,
                 cpu_threads=0, enable_mkldnn=True, batch_size=1):
        if backend not in BACKENDS:
            raise InferenceError(f"--backend must be one of {BACKENDS}, got {backend!r}")
        export = load_export(model_dir)
        self.model_dir = model_dir
        self.info, self.ops, self.labels = export["info"], export["ops"], export["labels"]
        g = self.info["Global"]
        self.softmax = bool(g.get("softmax", True))
        self.input_shape = list(g["input_shape"])
        if not cpu_threads:
            from ..utils.device import default_threads
            cpu_threads = default_threads()
        self.cpu_threads = cpu_threads
        self.batch_size = batch_size
        if backend == "paddle":
            self.backend = PaddleBackend(export["prog"], export["params"], use_gpu, use_tensorrt,
                                         cpu_threads, enable_mkldnn, batch_size, self.input_shape)
        elif backend == "onnxruntime":
            self.backend = OnnxBackend(os.path.join(model_dir, g.get("onnx_file", ONNX_FILE)),
                                       use_gpu, use_tensorrt, cpu_threads)
        else:
            if use_tensorrt:
                raise InferenceError("--use_tensorrt applies to --backend paddle or onnxruntime")
            self.backend = DygraphBackend(self.info, use_gpu, cpu_threads)

    def describe(self):
        threads = "" if getattr(self.backend, "gpu", False) else f", {self.cpu_threads} CPU threads"
        return f"{self.backend.describe()}{threads}"

    def preprocess(self, path):
        with open(path, "rb") as f:
            data = f.read()
        try:
            img = apply_transforms(self.ops, data)
        except BadImageError as e:
            raise InferenceError(f"{path}: {e}") from None
        except ValueError as e:
            raise InferenceError(f"{path}: preprocessing failed: {e}") from None
        h, w = self.input_shape[2:]
        if img.ndim != 3 or img.shape[0] != 3 or (h > 0 and img.shape[1] != h) or \
                (w > 0 and img.shape[2] != w):
            raise InferenceError(f"{path}: preprocessing gives {list(img.shape)}, the model takes "
                                 f"{self.input_shape} (NCHW)")
        return np.ascontiguousarray(img, dtype=np.float32)

    def run(self, batch):
        """Model outputs for an NCHW float32 batch; images of different sizes run separately."""
        return self.backend(np.ascontiguousarray(batch, dtype=np.float32))

    def predict_arrays(self, images):
        """Scores [n, classes] for a list of CHW arrays (grouped by size)."""
        out = [None] * len(images)
        groups = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape, []).append(i)
        for idx in groups.values():
            scores = self.run(np.stack([images[i] for i in idx]))
            for j, i in enumerate(idx):
                out[i] = scores[j]
        return np.stack(out)

    def predict(self, items, topk=5, on_batch=None):
        """[(path, label)] -> one result dict per image, in order."""
        topk = max(1, min(topk, len(self.labels)))
        results = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            scores = self.predict_arrays([self.preprocess(p) for p, _ in chunk])
            for (path, label), s in zip(chunk, scores):
                ids = np.argsort(-s, kind="stable")[:topk]
                r = {"image": path, "class_ids": [int(i) for i in ids],
                     "scores": [float(s[i]) for i in ids],
                     "label_names": [self.labels[i] for i in ids]}
                if label is not None:
                    r["label"] = int(label)
                results.append(r)
                if on_batch:
                    on_batch(r)
        return results

    def benchmark(self, batch, warmup=5, iters=20):
        """Median latency of the backend on ``batch`` (preprocessing excluded)."""
        for _ in range(warmup):
            self.run(batch)
        times, cpu = [], []
        for _ in range(iters):
            tic, cpu_tic = time.perf_counter(), time.process_time()
            self.run(batch)
            times.append(time.perf_counter() - tic)
            cpu.append(time.process_time() - cpu_tic)
        med = statistics.median(times)
        return {"batch_size": int(batch.shape[0]), "input_shape": list(batch.shape),
                "warmup": warmup, "iters": iters, "median_ms": med * 1000,
                # CPU time of all the process's threads: less sensitive to other load than wall
                "median_cpu_ms": statistics.median(cpu) * 1000,
                "p10_ms": float(np.percentile(times, 10)) * 1000,
                "p90_ms": float(np.percentile(times, 90)) * 1000,
                "images_per_s": batch.shape[0] / med}


def accuracy(results, topk):
    labeled = [r for r in results if "label" in r]
    if not labeled:
        return None
    top1 = sum(r["class_ids"][0] == r["label"] for r in labeled) / len(labeled)
    topn = sum(r["label"] in r["class_ids"][:topk] for r in labeled) / len(labeled)
    return {"num_labeled": len(labeled), "top1": top1, f"top{topk}": topn}


def format_result(r):
    scores = ", ".join(f"{s:.5f}" for s in r["scores"])
    line = (f"{r['image']}: class id(s): {r['class_ids']}, score(s): [{scores}], "
            f"label_name(s): {r['label_names']}")
    if "label" in r:
        line += f", label: {r['label']}"
    return line

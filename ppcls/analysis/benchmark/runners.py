"""What one timed iteration of a case runs in this process: the engine's training step, a
dygraph forward, the engine's fast evaluation, or an exported program."""
import os
import tempfile

import numpy as np

from .cases import BenchmarkError


def recipe_for(arch):
    """The recipe of ``arch`` (configs/*/ARCH.yaml) as a loaded config, or None."""
    from ...engine.recipe import load_config
    from ...utils.paths import CONFIG_ROOT
    from ..model_zoo import find_config
    path = find_config(arch)
    if path is None:
        return None
    return load_config(os.path.join(CONFIG_ROOT, path), [])


def check_arch(arch):
    from ...modeling import list_models
    names = list_models()
    if arch not in names:
        import difflib
        hint = difflib.get_close_matches(arch, names, 3)
        raise BenchmarkError(f"unknown model {arch!r}; " + (f"did you mean {', '.join(hint)}?" if hint
                                                            else f"registered: {', '.join(names)}"))
    return arch


def build_for_benchmark(arch, class_dim, recipe=None):
    from ...modeling import build_model
    check_arch(arch)
    params = dict(((recipe or {}).get("ARCHITECTURE") or {}).get("params") or {})
    return build_model(arch, class_dim=class_dim, **params)


class TrainRunner:
    """The engine's training step on a fixed synthetic batch."""

    def __init__(self, model, x, y, recipe):
        from ...engine.step import TrainStep
        from ...optimizer import build_lr_scheduler, build_optimizer
        opt_cfg = (recipe or {}).get("OPTIMIZER") or {
            "function": "Momentum", "params": {"momentum": 0.9},
            "regularizer": {"function": "L2", "factor": 1e-4}}
        lr_cfg = (recipe or {}).get("LEARNING_RATE") or {"function": "Cosine", "params": {"lr": 0.1}}
        self.eps = max(0.0, float((recipe or {}).get("ls_epsilon", 0.0) or 0.0))
        self.model, self.x, self.y = model, x, y
        self.sched = build_lr_scheduler(lr_cfg, 1000, 10)
        self.opt = build_optimizer(opt_cfg, self.sched, model.parameters())
        self.step_fn = TrainStep(self.opt, self.sched)

    def __call__(self):
        from ...modeling.loss import cross_entropy
        self.model.train()
        with self.step_fn.forward_context(self.model):
            loss = cross_entropy(self.model(self.x), self.y, self.eps)
        value = float(loss)                     # the engine reads the loss every step
        self.step_fn.backward(loss)
        return value


class DygraphForward:
    def __init__(self, model, x):
        self.model, self.x = model, x

    def __call__(self):
        import paddle
        self.model.eval()
        with paddle.no_grad():
            return self.model(self.x).numpy()


class StaticEvalForward:
    """The engine's fast evaluation path, exactly as ``_validate`` / ``run_eval`` use it."""

    def __init__(self, model, x, threads):
        from ...engine.static_eval import PredictorForward
        model.eval()
        self.forward = PredictorForward(model, threads)
        self.x = x

    def __call__(self):
        return self.forward(self.x).numpy()

    @property
    def fell_back(self):
        return self.forward.failed

    def close(self):
        self.forward.close()


class ExportedRunner:
    """An exported program (paddle.jit.save, dynamic batch) run by Paddle Inference + oneDNN or,
    converted by paddle2onnx, by ONNX Runtime. Uses the deployment code of ppcls.inference."""

    def __init__(self, model, x, threads, backend, export_dir):
        import paddle
        from ...inference.export import MODEL_PREFIX, model_files
        from ...inference.onnx_export import convert_onnx
        self.x = x
        prog, params = model_files(export_dir)
        if prog is None:
            model.eval()
            spec = [paddle.static.InputSpec([None, *x.shape[1:]], "float32", "x")]
            paddle.jit.save(model, os.path.join(export_dir, MODEL_PREFIX), input_spec=spec)
            prog, params = model_files(export_dir)
        if backend == "paddle_inference":
            from ...inference.predictor import PaddleBackend
            self.run = PaddleBackend(prog, params, use_gpu=False, cpu_threads=threads,
                                     enable_mkldnn=True)
        else:
            from ...inference.predictor import OnnxBackend
            onnx_file = os.path.join(export_dir, MODEL_PREFIX + ".onnx")
            if not os.path.isfile(onnx_file):
                convert_onnx(prog, params, onnx_file)
            self.run = OnnxBackend(onnx_file, use_gpu=False, cpu_threads=threads)

    def __call__(self):
        return self.run(self.x)


def synthetic_batch(batch_size, input_size, class_dim):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, 3, input_size, input_size), dtype=np.float32)
    y = rng.integers(0, class_dim, (batch_size, 1)).astype("int64")
    return x, y


def make_runner(case, model, x, y, x_np, recipe, tmp_dirs):
    if case.mode == "train":
        return TrainRunner(model, x, y, recipe)
    if case.backend == "dygraph":
        return DygraphForward(model, x)
    if case.backend == "static":
        return StaticEvalForward(model, x, case.threads)
    if "export" not in tmp_dirs:
        tmp_dirs["export"] = tempfile.mkdtemp(prefix="ppcls_bench_")
    return ExportedRunner(model, x_np, case.threads, case.backend, tmp_dirs["export"])

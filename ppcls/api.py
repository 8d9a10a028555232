"""The public Python API: ``ppcls.build_model``, ``list_models``, ``load_config``, ``train``,
``evaluate``, ``export``.

Thin functions over the library (the same code the command-line tools run). Nothing here is
imported until a function is called, so ``import ppcls`` stays light and does not import paddle:
call ``ppcls.prepare_cpu_env()`` first if you want MKL's AVX2 kernels on an AMD CPU (the tools
do; it must run before anything imports paddle).
"""
import copy
import os

from .utils.errors import UserError, require_paddle


class ModelError(UserError, ValueError):
    """An unknown model name or a constructor argument the model does not take."""


# ----------------------------------------------------------------------------- models
def list_models(pattern="*"):
    """Registered model names matching a shell-style ``pattern`` (case-insensitive), sorted.

    >>> ppcls.list_models("DLA*")
    ['DLA102', 'DLA102x', ..., 'DLA60x_c']
    """
    require_paddle()
    from .modeling import list_models as _list
    return _list(pattern or "*")


def build_model(name, pretrained=None, class_dim=None, **kwargs):
    """Build a registered model, optionally with weights; returned in eval mode.

    Args:
        name: a registered name (``ppcls.list_models()``), e.g. ``"DLA60"``.
        pretrained: weights to load: a ``.pdparams`` file, or its path without the suffix
            (``output/DLA60/best_model/ppcls``), or a ``.safetensors`` file. Nothing is
            downloaded: convert official checkpoints with ``tools/convert_weights.py``
            (``ppcls-convert``). None or False: random initialisation.
        class_dim: the number of classes. None (default) or ``"auto"``: the class count of
            ``pretrained`` (read from its classifier), or the model's default (1000) without
            weights. An int that differs from the weights' class count loads everything but
            the classifier, which keeps its fresh initialisation (fine-tuning, as timm's
            ``num_classes``); every other key must fit.
        **kwargs: the family's other constructor arguments (e.g. ``drop_rate`` for ReXNet).

    Raises ModelError (unknown name or argument), ppcls.utils.checkpoint.CheckpointError
    (weights missing, unreadable, or of another architecture: every bad key is named).

    >>> model = ppcls.build_model("DLA34")
    >>> model = ppcls.build_model("DLA60", pretrained="pretrained/DLA60.pdparams")
    >>> model = ppcls.build_model("DLA60", pretrained="pretrained/DLA60", class_dim=12)
    """
    require_paddle()
    from .inference.weights import ArchParamsError, load_model_for_export
    from .modeling import build_model as _build
    from .modeling import get_model_factory
    try:
        get_model_factory(name)
    except KeyError as e:
        raise ModelError(e.args[0]) from None
    if pretrained is True:
        raise ModelError(f"pretrained=True: ppcls never downloads weights; give a weights file "
                         f"(pretrained='pretrained/{name}.pdparams'), e.g. converted from the "
                         f"official checkpoint with tools/convert_weights.py -a {name}")
    if class_dim == "auto":
        if not pretrained:
            raise ModelError("class_dim='auto' reads the class count from the weights; give "
                             "pretrained=PATH or an int class_dim")
        class_dim = None
    if class_dim is not None and (isinstance(class_dim, bool) or not isinstance(class_dim, int)
                                  or class_dim < 1):
        raise ModelError(f"class_dim must be a positive int, None or 'auto', got {class_dim!r}")
    if pretrained is not None and pretrained is not False:
        pretrained = os.fspath(pretrained)
    try:
        if not pretrained:
            model = _build(name, **({"class_dim": class_dim} if class_dim else {}), **kwargs)
        elif class_dim is None:
            model, _ = load_model_for_export(name, pretrained, None, kwargs)
        else:
            from .engine.finetune import load_pretrained_for_finetune
            model = _build(name, class_dim=class_dim, **kwargs)
            load_pretrained_for_finetune(model, pretrained, class_dim)
    except TypeError as e:
        raise ModelError(f"{name}: {e}") from None
    except ArchParamsError as e:
        raise ModelError(f"{name}: {e.reason}") from None
    model.eval()
    return model


# ----------------------------------------------------------------------------- recipes
def _override_text(key, value):
    """``("TRAIN.batch_size", 64)`` -> ``"TRAIN.batch_size=64"`` (the -o form, YAML flow)."""
    import yaml
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    if text.endswith("\n..."):              # a plain scalar gets an explicit document end
        text = text[:-4].rstrip()
    return f"{key}={text}"


def load_config(path, overrides=None):
    """Read and check a recipe; returns a dict with attribute access (``cfg.TRAIN.batch_size``).

    Args:
        path: a YAML recipe (``configs/DLA/DLA60.yaml``), or the name of a recipe that ships
            with the package (``"DLA60_best"``, ``"quick_start/DLA46_c_digits"``).
        overrides: ``["epochs=10", "TRAIN.batch_size=64"]`` (the tools' ``-o``: values read as
            YAML scalars, never evaluated) or a dict ``{"epochs": 10, "TRAIN.batch_size": 64}``.

    Every key is checked against the schema (types, unknown keys with a suggestion, the model,
    LR schedule, optimizer and transforms); ppcls.utils.config.ConfigError names the file, the
    key and the fix.
    """
    require_paddle()
    from .engine.recipe import load_config as _load
    from .utils.config import ConfigError
    from .utils.paths import find_recipe
    path = os.fspath(path)
    if not os.path.isfile(path) and not os.path.isabs(path):
        shipped = find_recipe(path) if path.count(os.sep) <= 1 else None
        if shipped is not None:
            path = shipped
    if isinstance(overrides, dict):
        overrides = [_override_text(k, v) for k, v in overrides.items()]
    elif isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of 'KEY=VALUE' strings or a dict, got the "
                          f"string {overrides!r} (write [{overrides!r}])")
    return _load(path, list(overrides or []))


def _config(cfg, overrides):
    if isinstance(cfg, (str, os.PathLike)):
        return load_config(cfg, overrides)
    if overrides:
        from .utils.config import ConfigError
        raise ConfigError("overrides go with a recipe path; for a loaded config use "
                          "ppcls.load_config(path, overrides)")
    if not isinstance(cfg, dict) or "_source" not in cfg:
        from .utils.config import ConfigError
        raise ConfigError(f"expected a recipe path or the result of ppcls.load_config, got "
                          f"{type(cfg).__name__}")
    return cfg


def train(cfg, overrides=None):
    """Train (and validate) from a recipe, exactly as ``tools/train.py -c ... -o ...``.

    ``cfg``: the result of ``ppcls.load_config``, or a recipe path/name (then ``overrides`` as
    in load_config). Checkpoints go to ``model_save_dir/<ARCH>/``, the best weights to
    ``.../best_model/ppcls``. Returns ``{'best_top1', 'best_epoch', 'best_source', 'last',
    'bad_images'}`` (``last``: the last validation's metrics). Under ``python -m
    paddle.distributed.launch`` a script calling this trains data-parallel.
    """
    require_paddle()
    from .engine.train import train as _train
    return _train(_config(cfg, overrides))


def evaluate(cfg, weights=None, overrides=None):
    """Evaluate weights on the recipe's ``VALID`` set, as ``tools/eval.py``; logs the END line.

    ``weights``: a ``.pdparams`` prefix/path or a ``.safetensors`` file (default: the recipe's
    ``pretrained_model``). Returns ``{'top1', 'top5', 'loss', 'num_samples', ...}`` (and
    ``per_class`` when ``VALID.label_list`` names the classes).
    """
    require_paddle()
    from .engine.evaluate import run_eval
    cfg = copy.deepcopy(_config(cfg, overrides))
    cfg["mode"] = "valid"
    if weights is not None:
        cfg["pretrained_model"] = os.fspath(weights)
    return run_eval(cfg)


# ----------------------------------------------------------------------------- deployment
_SHORT_FORM = {"class_dim": None, "labels": None, "resize_short": 256, "crop": 224,
               "interpolation": "bilinear", "mean": None, "std": None}


def export(model, weights=None, out_dir=None, *, class_dim=None, labels=None,
           resize_short=256, crop=224, interpolation="bilinear", mean=None, std=None,
           softmax=True, onnx=False, opset=13):
    """Export for deployment, as ``tools/export_model.py``: a Paddle Inference program +
    ``inference.yml`` (preprocessing, labels), and ``inference.onnx`` with ``onnx=True``; each
    checked against the dygraph model before the folder is written. Returns the folder
    (``out_dir``; default ``./inference``, or the recipe's ``save_inference_dir``), which
    ``ppcls.inference.Predictor(folder)`` and ``tools/infer.py --model_dir`` read.

    ``model`` is one of:

    - a registered name (``"DLA60"``) with ``weights`` (a ``.pdparams`` prefix/path or a
      ``.safetensors`` file); the class count is read from the weights (``class_dim``, when
      given, must agree);
    - a ``paddle.nn.Layer`` (e.g. from ``ppcls.build_model``), exported with its current
      parameters (``weights`` must be None);
    - a recipe (the result of ``ppcls.load_config``, or a recipe path or shipped name): it
      gives the model, the class count, the eval preprocessing ``VALID.transforms``, the label
      names ``VALID.label_list`` and the weights ``pretrained_model`` (or ``weights``).

    Preprocessing of the first two forms: resize the short side to ``resize_short``, center
    crop ``crop`` (0: none) with ``interpolation``, normalise by ``mean``/``std`` (default
    ImageNet), CHW. ``labels``: a label-list file (``id name`` per line) or a list of names
    (default: the class ids). ``softmax=False`` exports logits.
    """
    require_paddle()
    import paddle
    from .inference.export import export_layer, export_recipe, export_weights
    from .inference.preprocess import InferenceError, default_ops
    log = _export_log()
    given = dict(class_dim=class_dim, labels=labels, resize_short=resize_short, crop=crop,
                 interpolation=interpolation, mean=mean, std=std)
    if isinstance(model, paddle.nn.Layer):
        out_dir = os.fspath(out_dir or "./inference")
        if weights is not None:
            raise InferenceError("export(layer, weights=...): a Layer is exported with its "
                                 "current parameters; load weights into it first, or pass the "
                                 "model name with weights=")
        ops = default_ops(resize_short, crop, interpolation, mean, std)
        export_layer(model, out_dir, ops, labels, class_dim, softmax=softmax, onnx=onnx,
                     opset=opset, log=log)
        return out_dir
    unknown = _unknown_model(model) if isinstance(model, str) else "not a name"
    if unknown is None:
        out_dir = os.fspath(out_dir or "./inference")
        if weights is None:
            raise InferenceError(f"export({model!r}) needs weights=PATH (a .pdparams prefix or a "
                                 f".safetensors file)")
        ops = default_ops(resize_short, crop, interpolation, mean, std)
        export_weights(model, os.fspath(weights), out_dir, class_dim, labels, ops,
                       softmax=softmax, onnx=onnx, opset=opset, log=log, label_source="labels")
        return out_dir
    if isinstance(model, str) and not os.path.isfile(model) and "/" not in model and \
            not model.endswith((".yaml", ".yml")):
        from .utils.paths import find_recipe
        if find_recipe(model) is None:
            raise ModelError(f"{unknown}; or give a recipe (ppcls.load_config)")
    used = [k for k, default in _SHORT_FORM.items() if given[k] != default]
    if used:
        raise InferenceError(f"export(recipe, {used[0]}=...): with a recipe, the recipe decides "
                             f"(classes_num, VALID.transforms, VALID.label_list)")
    cfg = copy.deepcopy(_config(model, None))
    if weights is not None:
        cfg["pretrained_model"] = os.fspath(weights)
    out_dir = os.fspath(out_dir or cfg["save_inference_dir"])
    export_recipe(cfg, out_dir, softmax=softmax, onnx=onnx, opset=opset, log=log)
    return out_dir


def _unknown_model(name):
    """None for a registered name, else the registry's message (with suggestions)."""
    from .modeling import get_model_factory
    try:
        get_model_factory(name)
    except KeyError as e:
        return e.args[0]
    return None


def _export_log():
    from .utils.logger import get_logger
    return get_logger().info

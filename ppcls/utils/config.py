"""Recipe files: YAML in the PaddleClas release/2.0 layout, validated before anything runs.

* ``yaml.safe_load`` only; ``-o key=value`` overrides parse the value as a YAML scalar/list.
* Every key is checked against ``SCHEMA``: unknown keys, wrong types and missing required keys
  fail at start with the key, the file and a suggestion (``ConfigError``).
* Sections whose parameters belong to a function (LEARNING_RATE, OPTIMIZER, transforms, mix)
  are checked against that function's signature by the module that owns it (``check_params``),
  called from ``ppcls.engine.recipe.load_config``: this module imports nothing of ppcls above
  the utilities.
"""
import copy
import difflib
import os
import re

import yaml

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A recipe problem; the message names the file, the key and the fix."""


# ---------------------------------------------------------------------------- field types
class Field:
    def __init__(self, default=None, required=False, help=""):
        self.default, self.required, self.help = default, required, help

    def check(self, value, where):
        return value


class Bool(Field):
    def check(self, value, where):
        if isinstance(value, bool):
            return value
        raise where.error(f"expected true/false, got {value!r}")


class Int(Field):
    def __init__(self, default=None, min=None, **kw):
        super().__init__(default, **kw)
        self.min = min

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise where.error(f"expected an integer, got {value!r}")
        if self.min is not None and value < self.min:
            raise where.error(f"must be >= {self.min}, got {value}")
        return value


class Float(Field):
    def __init__(self, default=None, min=None, max=None, **kw):
        super().__init__(default, **kw)
        self.min, self.max = min, max

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.error(f"expected a number, got {value!r}")
        value = float(value)
        if self.min is not None and value < self.min:
            raise where.error(f"must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise where.error(f"must be <= {self.max}, got {value}")
        return value


class Str(Field):
    def check(self, value, where):
        if value is None:
            return ""
        if not isinstance(value, str):
            raise where.error(f"expected a string (quote it), got {value!r}")
        return value


class WeightsPaths(Field):
    """A weights path (string), or for a distillation recipe a list ``[teacher, student]``
    whose entries may be empty (release/2.0's form); the engine says where a list is allowed."""

    def check(self, value, where):
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)) and 1 <= len(value) <= 2 and all(
                v is None or isinstance(v, str) for v in value):
            return [v or "" for v in value]
        raise where.error(f"expected a weights path (string), or [teacher, student] paths for "
                          f"distillation, got {value!r}")


class Choice(Field):
    def __init__(self, choices, default=None, **kw):
        super().__init__(default, **kw)
        self.choices = choices

    def check(self, value, where):
        if value not in self.choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in self.choices], 1)
            raise where.error(f"must be one of {self.choices}, got {value!r}"
                              + (f"; did you mean {hint[0]!r}?" if hint else ""))
        return value


class IntList(Field):
    def __init__(self, default=None, length=None, **kw):
        super().__init__(default, **kw)
        self.length = length

    def check(self, value, where):
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise where.error(f"expected a list of integers, got {value!r}")
        if self.length is not None and len(value) != self.length:
            raise where.error(f"expected {self.length} integers, got {len(value)}")
        return list(value)


class AnyDict(Field):
    """A mapping whose keys another module checks (model params, function params)."""

    def check(self, value, where):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise where.error(f"expected a mapping, got {value!r}")
        return value


class OpList(Field):
    """``[- OpName: {params}]`` lists (transforms, mix); ops are checked by their owner."""

    def check(self, value, where):
        if value is None:
            return []
        if not isinstance(value, list):
            raise where.error("expected a list of `- OpName: {params}` entries")
        ops = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                item = {item: None}
            if not isinstance(item, dict) or len(item) != 1:
                raise where.error(f"entry {i} must be a single `OpName: {{params}}` mapping, got {item!r}")
            (name, params), = item.items()
            if params is not None and not isinstance(params, dict):
                raise where.error(f"entry {i} ({name}): parameters must be a mapping, got {params!r}")
            ops.append({name: params or {}})
        return ops


class Section(Field):
    def __init__(self, fields, required=False, help=""):
        super().__init__(None, required, help)
        self.fields = fields

    def check(self, value, where):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise where.error(f"expected a mapping, got {value!r}")
        return _check_fields(self.fields, value, where)


# ---------------------------------------------------------------------------- the schema
def _data_section(required):
    return Section({
        "batch_size": Int(required=True, min=1, help="GLOBAL batch, divided over the workers"),
        "num_workers": Int(4, min=0),
        "file_list": Str(""),
        "data_dir": Str(required=True),
        "shuffle_seed": Int(0),
        "transforms": OpList(required=True),
        "mix": OpList([]),
        "label_list": Str(""),
    }, required=required)


SCHEMA = {
    "mode": Choice(["train", "valid"], "train"),
    "ARCHITECTURE": Section({"name": Str(required=True), "params": AnyDict({}),
                             "teacher_params": AnyDict({})}, required=True),
    "pretrained_model": WeightsPaths(""),
    "load_static_weights": Bool(False),
    "checkpoints": Str(""),
    "resume": Choice(["", "auto"], "", help="auto: continue from the newest complete checkpoint"),
    "last_epoch": Int(-1),
    "model_save_dir": Str("./output/"),
    "classes_num": Int(required=True, min=1),
    "total_images": Int(0, min=0),
    "save_interval": Int(1, min=1),
    "validate": Bool(True),
    "valid_interval": Int(1, min=1),
    "epochs": Int(required=True, min=1),
    "topk": Int(5, min=1),
    "image_shape": IntList([3, 224, 224], length=3),
    "use_mix": Bool(False),
    "ls_epsilon": Float(0.0, min=-1.0, max=1.0),
    "use_distillation": Bool(False),
    "print_interval": Int(10, min=1),
    "vdl_dir": Str(""),
    "seed": Int(None),
    "deterministic": Bool(False),
    "cpu_threads": Int(0, min=0, help="0: cores / local workers"),
    "use_static_eval": Bool(True),
    "max_bad_images": Float(0.01, min=0.0),
    "nan_policy": Choice(["stop", "skip"], "stop"),
    "nan_max_skips": Int(10, min=0),
    "use_gpu": Choice(["auto", True, False], "auto"),
    "save_inference_dir": Str("./inference/"),
    "export_softmax": Bool(True, help="tools/export_model.py appends softmax (False: logits)"),
    # fine-tuning, mixed precision, EMA, gradient accumulation (docs/finetune.md)
    "lrp": Float(1.0, min=0.0, help="lr factor of the pretrained layers (all but the "
                 "classifier); 0 freezes them"),
    "freeze_bn": Bool(False, help="BatchNorm in eval mode with frozen scale/shift"),
    "use_amp": Bool(False, help="mixed precision: float16 + loss scaling on GPU"),
    "amp_level": Choice(["O1", "O2"], "O1"),
    "ema_decay": Float(0.0, min=0.0, max=1.0, help="EMA of the weights; 0 = off"),
    "accum_steps": Int(1, min=1, help="micro-batches per optimizer step"),
    # distillation: use_distillation True, ARCHITECTURE.name <Teacher>_distill_<Student>
    # (ppcls.engine.distill checks these against each other)
    "distillation_loss": Section({
        "function": Choice(["SSLD", "KL"], "SSLD", help="SSLD: release/2.0's loss; KL: Hinton"),
        "temperature": Float(1.0, help="KL only: softmax temperature T (> 0), loss x T^2"),
        "label_weight": Float(0.0, min=0.0, max=1.0, help="(1 - w) * distill + w * label loss"),
    }),
    # long runs (README "Multi-node"): disk bound, batch-size-scaled lr
    "keep_checkpoints": Int(10, min=0, help="newest epoch checkpoints kept; 0 keeps all"),
    "auto_scale_lr": Bool(False, help="scale the lr linearly when TRAIN.batch_size differs "
                          "from the recipe file's"),
    "LEARNING_RATE": Section({"function": Str(required=True), "params": AnyDict({})},
                             required=True),
    "OPTIMIZER": Section({"function": Str(required=True), "params": AnyDict({}),
                          "regularizer": AnyDict({})}, required=True),
    "TRAIN": _data_section(required=False),
    "VALID": _data_section(required=False),
}


class Where:
    def __init__(self, source, path=""):
        self.source, self.path = source, path

    def child(self, key):
        return Where(self.source, f"{self.path}.{key}" if self.path else str(key))

    def error(self, msg):
        return ConfigError(f"{self.source}: {self.path or '<top level>'}: {msg}")


def _check_fields(fields, data, where):
    out = {}
    for key in data:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), 1, 0.6)
            raise where.child(key).error(
                "unknown key" + (f"; did you mean {hint[0]!r}?" if hint
                                 else f"; allowed here: {', '.join(sorted(fields))}"))
    for key, field in fields.items():
        sub = where.child(key)
        if key in data:
            out[key] = field.check(data[key], sub)
        elif field.required:
            raise sub.error("required key is missing" + (f" ({field.help})" if field.help else ""))
        elif isinstance(field, Section):
            out[key] = None
        else:
            out[key] = copy.deepcopy(field.default)
    return out


# ---------------------------------------------------------------------------- loading
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float (YAML 1.1 wants ``1.0e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _safe_load(text):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class AttrDict(dict):
    """dict with attribute access (``cfg.TRAIN.batch_size``), as PaddleClas configs have."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as e:
            raise AttributeError(key) from e

    def __setattr__(self, key, value):
        self[key] = value


def _to_attr(obj):
    if isinstance(obj, dict):
        return AttrDict({k: _to_attr(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [_to_attr(v) for v in obj]
    return obj


def parse_override(text):
    """``TRAIN.batch_size=64`` -> (['TRAIN', 'batch_size'], 64); YAML scalar/list, never eval."""
    if "=" not in text:
        raise ConfigError(f"-o {text!r}: expected key=value (e.g. -o TRAIN.batch_size=64)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"-o {text!r}: empty key")
    try:
        value = _safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"-o {text!r}: value is not valid YAML: {e}") from e
    return key.split("."), value


def apply_overrides(data, overrides):
    for text in overrides or []:
        keys, value = parse_override(text)
        node = data
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if isinstance(nxt, list):
                raise ConfigError(f"-o {text!r}: {'.'.join(keys[:i + 1])} is a list; "
                                  f"edit list entries in the YAML file")
            if not isinstance(nxt, dict):
                raise ConfigError(f"-o {text!r}: {'.'.join(keys[:i + 1])} is not a section")
            node = nxt
        node[keys[-1]] = value
    return data


def read_config(path, overrides=None):
    """Read, override and check a recipe against the schema (types, unknown and missing keys);
    returns a plain dict with every default filled in. ppcls.engine.recipe.load_config adds the
    checks that need the models, transforms, LR schedules and optimizers."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = _safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    data = apply_overrides(data, overrides)
    source = path + (" (with -o overrides)" if overrides else "")
    return _check_fields(SCHEMA, data, Where(source)), source


def to_attr_dict(cfg, source):
    cfg = _to_attr(cfg)
    cfg["_source"] = source
    return cfg


def check_params(fn, params, where, skip=("self",)):
    """Check ``params`` against ``fn``'s keyword arguments (a class's __init__ or a function)."""
    import inspect
    sig = inspect.signature(fn)
    allowed = [n for n, p in sig.parameters.items()
               if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, 1, 0.6)
            raise where.child(key).error(
                "unknown parameter" + (f"; did you mean {hint[0]!r}?" if hint
                                       else f"; allowed: {', '.join(allowed) or 'none'}"))
    missing = [n for n, p in sig.parameters.items()
               if n in allowed and p.default is p.empty and n not in params]
    if missing:
        raise where.child(missing[0]).error("required parameter is missing")

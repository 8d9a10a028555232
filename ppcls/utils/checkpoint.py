"""Checkpoint I/O that never leaves a half-written checkpoint.

Layout: ``model_save_dir/<ARCH>/<epoch>/ppcls.{pdparams,pdopt,state.json}`` and
``model_save_dir/<ARCH>/best_model/ppcls.*``. A checkpoint directory is written under a
temporary name and renamed into place, so after a kill it either exists whole or not at all.
What a kill can leave behind (``<name>.tmp-<pid>``, or ``<name>.old-<pid>`` when an existing
directory such as best_model was being replaced, or ``<name>.del-<pid>`` when an old checkpoint
was being removed) is never read as a checkpoint and is cleaned up, or restored, by
``recover_partial`` when the next run starts.
"""
import json
import logging
import os
import pickle
import re
import shutil

import numpy as np
import paddle

from .errors import UserError

logger = logging.getLogger("ppcls")

PREFIX = "ppcls"
_FILES = (".pdparams", ".pdopt", ".state.json")


class CheckpointError(UserError, ValueError):
    """A weights/checkpoint file that is missing, unreadable or does not fit the model."""


def strip_suffix(path):
    """``.../ppcls.pdparams`` (or .pdopt, .state.json) -> ``.../ppcls``."""
    for suffix in _FILES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path




def save_checkpoint(directory, model_state, opt_state, state, extra_params=None):
    """Write ``directory/ppcls.*`` atomically (via ``directory.tmp-<pid>`` and a rename).

    ``extra_params`` {name: state dict} adds ``ppcls_<name>.pdparams`` files (the EMA weights
    ``ppcls_ema``, or in best_model the weights that did not win), written in the same step.
    """
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{directory}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    old = None
    try:
        for obj, name in [(model_state, PREFIX + ".pdparams"), (opt_state, PREFIX + ".pdopt")] + \
                [(extra, f"{PREFIX}_{n}.pdparams") for n, extra in (extra_params or {}).items()]:
            if obj is not None:
                paddle.save(obj, os.path.join(tmp, name))
                _fsync(os.path.join(tmp, name))
        with open(os.path.join(tmp, PREFIX + ".state.json"), "w") as f:     # last: marks it complete
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(directory):
            old = f"{directory}.old-{os.getpid()}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync(parent, directory=True)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old and not os.path.exists(directory):
            os.replace(old, directory)
        raise


def _fsync(path, directory=False):
    """Flush a written file (or a directory's entries) to disk: a checkpoint that was renamed
    into place must survive a power cut, not only a killed process."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        if not directory:       # some filesystems cannot fsync a directory; files must
            raise
    finally:
        os.close(fd)


_PARTIAL = re.compile(r"(.+)\.(tmp|old|del)-(\d+)$")


def _pid_alive(pid):
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def recover_partial(arch_dir):
    """Clean up after a run that was killed while saving: remove ``*.tmp-<pid>`` directories
    (half-written, never used) and restore ``<name>.old-<pid>`` when ``<name>`` is missing (the
    kill came between the two renames that replace a checkpoint), else remove it. Directories
    of a process that is still running (another run sharing the folder) are left alone.
    Returns the list of actions taken, for the log."""
    actions = []
    if not os.path.isdir(arch_dir):
        return actions
    for name in sorted(os.listdir(arch_dir)):
        m = _PARTIAL.fullmatch(name)
        path = os.path.join(arch_dir, name)
        if not m or not os.path.isdir(path) or _pid_alive(int(m.group(3))):
            continue
        target = os.path.join(arch_dir, m.group(1))
        if m.group(2) == "del":                 # a kill while an old checkpoint was removed
            shutil.rmtree(path, ignore_errors=True)
            actions.append(f"finished removing {path}")
        elif m.group(2) == "old" and not os.path.exists(target) and is_complete(path):
            os.replace(path, target)
            actions.append(f"restored {target} from {name}")
        else:
            shutil.rmtree(path, ignore_errors=True)
            actions.append(f"removed incomplete {path}")
    return actions


def remove_checkpoint(directory):
    """Remove a checkpoint directory without ever leaving a partial one under its name: it is
    renamed to ``<name>.del-<pid>`` (atomic) first, which ``recover_partial`` finishes
    removing if a kill interrupts the deletion."""
    doomed = f"{directory}.del-{os.getpid()}"
    os.replace(directory, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def epoch_checkpoints(arch_dir):
    """{epoch: directory} of the ``<epoch>/`` checkpoint directories under ``arch_dir``."""
    if not os.path.isdir(arch_dir):
        return {}
    return {int(d): os.path.join(arch_dir, d) for d in os.listdir(arch_dir)
            if re.fullmatch(r"\d+", d) and os.path.isdir(os.path.join(arch_dir, d))}


def is_complete(directory):
    return all(os.path.isfile(os.path.join(directory, PREFIX + s)) for s in (".pdparams", ".state.json"))


def complete_checkpoints(arch_dir):
    """Complete ``<epoch>/ppcls`` prefixes under ``arch_dir``, newest first."""
    if not os.path.isdir(arch_dir):
        return []
    epochs = sorted((int(d) for d in os.listdir(arch_dir) if re.fullmatch(r"\d+", d)), reverse=True)
    return [os.path.join(arch_dir, str(e), PREFIX) for e in epochs
            if is_complete(os.path.join(arch_dir, str(e)))]


def latest_checkpoint(arch_dir):
    """Newest complete ``<epoch>/ppcls`` prefix under ``arch_dir``, or None."""
    found = complete_checkpoints(arch_dir)
    return found[0] if found else None


def load_latest_checkpoint(arch_dir):
    """(prefix, load_checkpoint(prefix)) of the newest checkpoint that loads, or (None, None).
    A checkpoint that cannot be read (e.g. damaged on disk) is named and skipped."""
    for prefix in complete_checkpoints(arch_dir):
        try:
            return prefix, load_checkpoint(prefix)
        except CheckpointError as e:
            logger.warning(f"resume: skipping {prefix}: {str(e).splitlines()[0]}")
    return None, None


# What a .pdparams/.pdopt pickle written by paddle.save may build: NumPy arrays in plain
# containers. Anything else (os.system, eval, an arbitrary class) would run code on loading.
_PLAIN_GLOBALS = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                  for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode"),
    *((b, n) for b in ("builtins", "__builtin__") for n in ("set", "frozenset", "slice", "complex"))}


class _NotPlain(pickle.UnpicklingError):
    pass


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PLAIN_GLOBALS:
            return super().find_class(module, name)
        raise _NotPlain(f"{module}.{name}")


def check_plain_pickle(file):
    """Refuse a pickle that would build anything but arrays and plain containers, before
    paddle.load (which unpickles without limits) reads it. Other read errors are left to the
    loader, which names them."""
    try:
        with open(file, "rb") as f:
            _PlainUnpickler(f).load()
    except _NotPlain as e:
        raise CheckpointError(f"refusing to load {file}: it calls {e} when unpickled, which a "
                              f"weights file never does (a pickle can run code). Load only "
                              f"files you trust; exchange weights as .safetensors") from None
    except Exception:  # noqa: BLE001 - truncated or not a pickle: paddle.load reports it
        pass


def load_params_file(path):
    """Read a ``.pdparams`` (path given with or without the suffix) or a ``.safetensors``
    file (no pickle involved) -> {name: ndarray}."""
    if path.endswith(".safetensors"):
        if not os.path.isfile(path):
            raise CheckpointError(f"weights file not found: {path}")
        try:
            from safetensors.numpy import load_file
            return load_file(path)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"cannot read {path} as safetensors ({type(e).__name__}: {e})") from None
    prefix = strip_suffix(path)
    file = prefix + ".pdparams"
    if not os.path.isfile(file):
        raise CheckpointError(f"weights file not found: {file} (give the path without the "
                              f".pdparams suffix, e.g. output/DLA60/best_model/ppcls)")
    check_plain_pickle(file)
    try:
        state = paddle.load(file, return_numpy=True)
    except Exception as e:  # noqa: BLE001 - truncated pickles raise many kinds
        raise CheckpointError(f"cannot read {file}: it is truncated or not a Paddle weights "
                              f"file ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a dict of tensors, got {type(state).__name__}")
    return state


def fit_state_dict(model, state, source, skip_mismatched_head=False, head_keys=None):
    """Check ``state`` against ``model``: missing, unexpected and shape-mismatched keys.

    Returns (usable state, report). Raises CheckpointError naming every bad key. With
    ``skip_mismatched_head`` (fine-tuning) the classifier's keys, ``head_keys`` (found by
    ppcls.engine.finetune.classifier_keys), may be missing or differ in shape: they are left
    out of the usable state (the model keeps its fresh classifier) and listed with the reason
    in ``report['reinitialised']``; every other key must still match.
    """
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [(k, list(np.shape(state[k])), list(target[k].shape)) for k in target
                  if k in state and list(np.shape(state[k])) != list(target[k].shape)]
    usable = {k: v for k, v in state.items() if k in target and k not in {m[0] for m in mismatched}}
    report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched,
              "reinitialised": []}
    if skip_mismatched_head:
        if head_keys is None:
            raise ValueError("skip_mismatched_head needs the classifier's head_keys")
        head = set(head_keys)
        report["reinitialised"] = (
            [(k, f"shape {a} in the file, {b} in the model: another class count")
             for k, a, b in mismatched if k in head]
            + [(k, "not in the file") for k in missing if k in head])
        missing = [k for k in missing if k not in head]
        mismatched = [m for m in mismatched if m[0] not in head]
    if missing or unexpected or mismatched:
        lines = [f"missing: {k}" for k in missing[:10]] + \
                [f"unexpected: {k}" for k in unexpected[:10]] + \
                [f"shape mismatch: {k} file {a} vs model {b}" for k, a, b in mismatched[:10]]
        only_head = " (only the classifier may differ when fine-tuning)" if skip_mismatched_head else ""
        # most names foreign: another naming (PyTorch, PaddleClas's ResNet...), not another model
        foreign = len(set(state) & set(target)) < len(target) / 2
        cause = ("most of the model's keys are not in the file: wrong ARCHITECTURE.name, or "
                 "weights in another naming (PyTorch, PaddleClas's ResNet/ResNeXt) to convert "
                 "first with tools/convert_weights.py -a ARCH --src FILE --dst OUT.pdparams"
                 if foreign else "wrong ARCHITECTURE.name or classes_num?")
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(mismatched)} shape-mismatched key(s){only_head} "
            f"({cause}):\n  " + "\n  ".join(lines))
    return usable, report


def load_pretrained(model, path):
    """Load the weights file ``path`` (prefix or .safetensors) into ``model``; every key must fit."""
    state = load_params_file(path)
    usable, report = fit_state_dict(model, state, strip_suffix(path) + ".pdparams")
    model.set_state_dict(usable)
    return report


def load_checkpoint(prefix):
    """(model state, optimizer state or None, state dict) of a ``.../<epoch>/ppcls`` prefix."""
    prefix = strip_suffix(prefix)
    model_state = load_params_file(prefix)
    opt_state = None
    if os.path.isfile(prefix + ".pdopt"):
        check_plain_pickle(prefix + ".pdopt")
        try:
            opt_state = paddle.load(prefix + ".pdopt")
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"cannot read {prefix}.pdopt: {e}") from None
    state_file = prefix + ".state.json"
    if not os.path.isfile(state_file):
        raise CheckpointError(f"{state_file} not found: {prefix} is not a complete training "
                              f"checkpoint (use pretrained_model to load weights only)")
    with open(state_file) as f:
        state = json.load(f)
    return model_state, opt_state, state


def load_extra_params(prefix, name):
    """``<prefix>_<name>.pdparams`` of a checkpoint (e.g. the EMA weights) or None if absent."""
    path = f"{strip_suffix(prefix)}_{name}.pdparams"
    return load_params_file(path) if os.path.isfile(path) else None


def _rename_keys(state, mapping):
    """Rename ``<param name><suffix>`` keys with ``mapping`` (longest param name first)."""
    names = sorted(mapping, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):                 # master_weights: {param name: tensor}
            out[key] = _rename_keys(value, mapping) if key != "LR_Scheduler" else value
            continue
        new = key
        for name in names:
            if key == name or key.startswith(name + "_"):
                new = mapping[name] + key[len(name):]
                break
        out[new] = value
    return out


def optimizer_state_for_saving(optimizer, model):
    """Optimizer state keyed by structured parameter names (``layer1.0.conv1.weight_velocity_0``).

    Paddle keys it by generated names (``conv2d_20.w_0``) that depend on how many layers the
    process built before, so a checkpoint saved by one process would not load in another.
    """
    return _rename_keys(optimizer.state_dict(), {p.name: n for n, p in model.named_parameters()})


def optimizer_state_for_loading(state, model):
    return _rename_keys(state, {n: p.name for n, p in model.named_parameters()})

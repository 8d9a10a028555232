"""Checkpoint I/O that never leaves a half-written checkpoint.

Layout: ``model_save_dir/<ARCH>/<epoch>/ppcls.{pdparams,pdopt,state.json}`` and
``model_save_dir/<ARCH>/best_model/ppcls.*``. A checkpoint directory is written under a
temporary name and renamed into place, so after a kill it either exists whole or not at all.
"""
import json
import logging
import os
import re
import shutil

import numpy as np
import paddle

logger = logging.getLogger("ppcls")

PREFIX = "ppcls"
_FILES = (".pdparams", ".pdopt", ".state.json")


class CheckpointError(ValueError):
    """A weights/checkpoint file that is missing, unreadable or does not fit the model."""


def _strip_suffix(path):
    for suffix in _FILES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def save_checkpoint(directory, model_state, opt_state, state):
    """Write ``directory/ppcls.*`` atomically (via ``directory.tmp-<pid>`` and a rename)."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{directory}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        paddle.save(model_state, os.path.join(tmp, PREFIX + ".pdparams"))
        if opt_state is not None:
            paddle.save(opt_state, os.path.join(tmp, PREFIX + ".pdopt"))
        with open(os.path.join(tmp, PREFIX + ".state.json"), "w") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if os.path.exists(directory):
            old = f"{directory}.old-{os.getpid()}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_complete(directory):
    return all(os.path.isfile(os.path.join(directory, PREFIX + s)) for s in (".pdparams", ".state.json"))


def latest_checkpoint(arch_dir):
    """Newest complete ``<epoch>/ppcls`` prefix under ``arch_dir``, or None."""
    if not os.path.isdir(arch_dir):
        return None
    epochs = sorted((int(d) for d in os.listdir(arch_dir) if re.fullmatch(r"\d+", d)), reverse=True)
    for e in epochs:
        d = os.path.join(arch_dir, str(e))
        if is_complete(d):
            return os.path.join(d, PREFIX)
    return None


def load_params_file(path):
    """Read a ``.pdparams`` (path given with or without the suffix) -> {name: ndarray}."""
    prefix = _strip_suffix(path)
    file = prefix + ".pdparams"
    if not os.path.isfile(file):
        raise CheckpointError(f"weights file not found: {file} (give the path without the "
                              f".pdparams suffix, e.g. output/DLA60/best_model/ppcls)")
    try:
        state = paddle.load(file, return_numpy=True)
    except Exception as e:  # noqa: BLE001 - truncated pickles raise many kinds
        raise CheckpointError(f"cannot read {file}: it is truncated or not a Paddle weights "
                              f"file ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a dict of tensors, got {type(state).__name__}")
    return state


def fit_state_dict(model, state, source, skip_mismatched_head=False):
    """Check ``state`` against ``model``: missing, unexpected and shape-mismatched keys.

    Returns (usable state, report). Raises CheckpointError naming every bad key, unless the
    only mismatches are the classifier's and ``skip_mismatched_head`` is set (fine-tuning).
    """
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [(k, list(np.shape(state[k])), list(target[k].shape)) for k in target
                  if k in state and list(np.shape(state[k])) != list(target[k].shape)]
    usable = {k: v for k, v in state.items() if k in target and k not in {m[0] for m in mismatched}}
    report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    if skip_mismatched_head:
        return usable, report
    if missing or unexpected or mismatched:
        lines = [f"missing: {k}" for k in missing[:10]] + \
                [f"unexpected: {k}" for k in unexpected[:10]] + \
                [f"shape mismatch: {k} file {a} vs model {b}" for k, a, b in mismatched[:10]]
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(mismatched)} shape-mismatched key(s) "
            f"(wrong ARCHITECTURE.name or classes_num?):\n  " + "\n  ".join(lines))
    return usable, report


def load_pretrained(model, path, allow_head_mismatch=False):
    state = load_params_file(path)
    usable, report = fit_state_dict(model, state, _strip_suffix(path) + ".pdparams",
                                    allow_head_mismatch)
    model.set_state_dict(usable)
    return report


def load_checkpoint(prefix):
    """(model state, optimizer state or None, state dict) of a ``.../<epoch>/ppcls`` prefix."""
    prefix = _strip_suffix(prefix)
    model_state = load_params_file(prefix)
    opt_state = None
    if os.path.isfile(prefix + ".pdopt"):
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

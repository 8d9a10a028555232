"""Bounded disk: ``keep_checkpoints`` and what the kept checkpoints will need.

Epoch checkpoints are removed only after a newer one is complete on disk (``run_state.save``
renames it into place), oldest first, never ``best_model/``, never a checkpoint of an epoch at
or after the one just saved (the newest is what ``resume: auto`` needs; later epochs belong to
another run the user may still want). Removal is a rename to ``<epoch>.del-<pid>`` then a
delete, so a kill never leaves a half-removed checkpoint under a real epoch's name.
"""
import os
import shutil

from ..utils import checkpoint as ckpt


def rotate(arch_dir, keep, saved_epoch):
    """After checkpoint ``saved_epoch`` is complete: keep it and the ``keep - 1`` newest older
    ones, remove the rest of the older ones; ``keep`` 0 keeps all. Returns the removed dirs."""
    if keep <= 0:
        return []
    older = sorted((e for e in ckpt.epoch_checkpoints(arch_dir) if e < saved_epoch), reverse=True)
    removed = []
    for epoch in older[keep - 1:]:
        path = os.path.join(arch_dir, str(epoch))
        ckpt.remove_checkpoint(path)
        removed.append(path)
    return removed


def _tensor_bytes(tensors):
    total = 0
    for t in tensors:
        try:
            size = t.element_size()
        except (AttributeError, ValueError):
            size = 4
        total += int(t.size) * size
    return total


# optimizer state per trainable parameter, in copies of the parameter (Paddle 3.3)
_SLOTS = {"Momentum": 1, "SGD": 0, "AdamW": 2, "Adam": 2}


def estimate_checkpoint_bytes(model, optimizer, ema=None):
    """Bytes of one epoch checkpoint, before one exists: the weights (``state_dict``: BN
    statistics included), the optimizer's per-parameter state (Momentum: one velocity, AdamW:
    two moments; with multi_precision also fp32 master weights), EMA weights. Returns (total,
    {part: bytes})."""
    weights = _tensor_bytes(model.state_dict().values())
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    slots = _SLOTS.get(type(optimizer).__name__, 1)
    opt = slots * sum(int(p.size) * 4 for p in trainable)   # accumulators are float32
    if getattr(optimizer, "_multi_precision", False):
        opt += sum(int(p.size) * 4 for p in trainable)
    parts = {"weights": weights, "optimizer": opt}
    if ema is not None:
        parts["EMA"] = _tensor_bytes(ema.state_dict().values())
    return sum(parts.values()), parts


def directory_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def saves_in_run(cfg):
    """Epoch checkpoints a whole run writes (``save_interval``, and always the last epoch)."""
    epochs = cfg["epochs"]
    return sum(1 for e in range(epochs) if (e + 1) % cfg["save_interval"] == 0 or e == epochs - 1)


def _size(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _free_bytes(path):
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return shutil.disk_usage(existing).free


def plan(arch_dir, cfg, model, optimizer, ema, resume, logger):
    """At start (rank 0): log one checkpoint's size, how many are kept and their total; warn,
    with the numbers, when the free space of model_save_dir cannot hold what is still to be
    written. The size is measured on the resumed checkpoint, else estimated."""
    if resume and os.path.isdir(os.path.dirname(resume)):
        one = directory_bytes(os.path.dirname(resume))
        how = f"{_size(one)} (as {os.path.dirname(resume)})"
    else:
        one, parts = estimate_checkpoint_bytes(model, optimizer, ema)
        how = f"~{_size(one)} (" + " + ".join(f"{k} {_size(v)}" for k, v in parts.items()) + ")"
    best = _tensor_bytes(model.state_dict().values()) * (2 if ema is not None else 1)
    saves, keep = saves_in_run(cfg), cfg["keep_checkpoints"]
    kept = saves if keep == 0 else min(keep, saves)
    total = kept * one + best
    on_disk = directory_bytes(arch_dir) if os.path.isdir(arch_dir) else 0
    free = _free_bytes(cfg["model_save_dir"])
    logger.info(f"checkpoints: {how} each, keeping "
                + (f"all {saves}" if keep == 0 else f"the newest {kept} of {saves}")
                + f" (keep_checkpoints: {keep}) + best_model {_size(best)} = {_size(total)} in "
                f"{arch_dir}; {_size(free)} free there")
    if total - on_disk > free:
        logger.warning(f"model_save_dir {cfg['model_save_dir']}: the kept checkpoints need "
                       f"{_size(total)} ({kept} x {_size(one)} + best_model {_size(best)}), "
                       f"{_size(max(0, total - on_disk))} more than {arch_dir} holds now, but only "
                       f"{_size(free)} is free: the run would stop at a save. Lower "
                       f"keep_checkpoints, free space or set model_save_dir to a larger disk")
    return {"one": one, "kept": kept, "total": total, "free": free}

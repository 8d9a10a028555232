"""``TRAIN.batch_size`` against the recipe file's: the linearly scaled learning rate.

A recipe's lr goes with its (global) batch size. Run with another batch (``-o
TRAIN.batch_size=...``, e.g. fewer GPUs and no accumulation) and the same lr, and training is
another recipe; the ECA-Net reproduction reached NaN at epoch 6 with an 8-GPU lr on one GPU. The
linear scaling rule (lr x new batch / recipe batch; Goyal et al. 2017, "Accurate, Large
Minibatch SGD") keeps the per-sample step. ``train`` logs it whenever the batch differs, and
``auto_scale_lr: True`` uses it: every lr value of ``LEARNING_RATE.params`` (``lr``, Piecewise
``values``, Cosine ``end_lr``) is scaled; warmup and decay epochs stay.
"""
import yaml

from ..utils.config import Where

LR_VALUES = ("lr", "values", "end_lr")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def file_values(path):
    """(TRAIN.batch_size, LEARNING_RATE.params.lr) as written in the recipe file (None when
    absent)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        return None, None
    train, lr = data.get("TRAIN"), data.get("LEARNING_RATE")
    batch = train.get("batch_size") if isinstance(train, dict) else None
    params = lr.get("params") if isinstance(lr, dict) else None
    rate = params.get("lr") if isinstance(params, dict) else None
    return (batch if _number(batch) and isinstance(batch, int) else None,
            float(rate) if _number(rate) else None)


def inspect(cfg, path, overrides, source):
    """Called by load_config: records in ``cfg['_batch_scaling']`` how the batch differs from
    the file's, and refuses ``auto_scale_lr`` together with an lr set by ``-o`` (which of the two
    was meant is not ours to guess)."""
    if cfg.get("TRAIN") is None:
        return
    file_batch, file_lr = file_values(path)
    batch = cfg["TRAIN"]["batch_size"]
    lr_set = sorted(o.split("=", 1)[0].strip() for o in overrides or ()
                    if o.split("=", 1)[0].strip() in {f"LEARNING_RATE.params.{k}" for k in LR_VALUES})
    if cfg.get("auto_scale_lr") and lr_set and file_batch and file_batch != batch:
        raise Where(source).child("auto_scale_lr").error(
            f"True scales the recipe file's lr to TRAIN.batch_size, but -o also sets "
            f"{', '.join(lr_set)}; keep one of the two (-o auto_scale_lr=False to use your lr)")
    if file_batch and file_batch != batch:
        cfg["_batch_scaling"] = {"file_batch": file_batch, "batch": batch, "lr_set": lr_set,
                                 "file": path, "file_lr": file_lr}


def scale_params(params, factor):
    out = dict(params)
    for key in LR_VALUES:
        value = out.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value * factor
        elif isinstance(value, list):
            out[key] = [v * factor for v in value]
    return out


def lr_section(cfg, logger):
    """The LEARNING_RATE section to build the schedule from: the recipe's, or with
    ``auto_scale_lr`` its linearly scaled version. Logs the scaled lr whenever the batch size
    differs from the recipe file's."""
    section = dict(cfg["LEARNING_RATE"])
    info = cfg.get("_batch_scaling")
    if not info:
        return section
    factor = info["batch"] / info["file_batch"]
    lr = section["params"].get("lr")
    ratio = f"x {info['batch']}/{info['file_batch']}"
    if cfg.get("auto_scale_lr"):
        section["params"] = scale_params(section["params"], factor)
        logger.info(f"auto_scale_lr: TRAIN.batch_size {info['batch']} instead of the recipe "
                    f"file's {info['file_batch']}: lr {lr:g} -> {section['params'].get('lr'):g} "
                    f"({ratio})")
        return section
    file_lr = info["file_lr"] if info["file_lr"] is not None else lr
    if file_lr is None:
        return section
    note = (f"TRAIN.batch_size {info['batch']} differs from {info['file_batch']} in "
            f"{info['file']}: the linearly scaled lr is {file_lr * factor:g} ({ratio} of the "
            f"file's {file_lr:g})")
    if info["lr_set"]:
        note += f"; using lr {lr:g} as set by -o"
        logger.info(note)
    else:
        note += f"; training with lr {lr:g} as written; -o auto_scale_lr=True uses the scaled lr"
        (logger.info if 0.5 <= factor <= 2 else logger.warning)(note)
    return section

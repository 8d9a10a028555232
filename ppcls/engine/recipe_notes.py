"""One-line notes, at the start of training, where a PaddleClas release/2.0 recipe means
something slightly different here: keys accepted for compatibility that change nothing, and
operators whose release/2.0 behaviour we deliberately do not copy (README, "PaddleClas
release/2.0 recipes")."""


def recipe_notes(cfg, num_train_images, steps_per_epoch):
    """The notes for ``cfg`` (a list of strings, possibly empty)."""
    notes = []
    total = cfg.get("total_images") or 0
    if total and total != num_train_images:
        # release/2.0 builds its LR schedule with total_images // batch_size steps per epoch
        notes.append(f"total_images is {total} but TRAIN lists {num_train_images} images: the "
                     f"LR schedule counts the {steps_per_epoch} steps/epoch actually run "
                     f"(PaddleClas release/2.0 would use total_images // batch_size)")
    for item in (cfg.get("TRAIN") or {}).get("transforms") or []:
        (name, params), = item.items()
        if name == "GridMask":
            ramp = (params or {}).get("ramp_epochs", 240)
            prob = (params or {}).get("prob", 1.0)
            if ramp:
                last = cfg["epochs"] - 1
                notes.append(f"GridMask: probability ramps linearly from 0 at epoch 0 to {prob} "
                             f"at epoch {ramp} (ramp_epochs; {prob * min(1.0, last / ramp):.3f} "
                             f"at this run's last epoch {last}); ramp_epochs: 0 applies {prob} "
                             f"from the start")
    return notes


def log_recipe_notes(cfg, num_train_images, steps_per_epoch, logger):
    for note in recipe_notes(cfg, num_train_images, steps_per_epoch):
        logger.info(f"note: {note}")

"""What a training run saves and restores: epoch checkpoints, ``best_model/``, resume."""
import errno
import os

from ..modeling.distillation import is_distillation_model, student_state
from ..utils import checkpoint as ckpt
from . import peers, resume_sync
from .errors import TrainingError


def resume_plan(cfg, arch_dir, env, logger):
    """What this run resumes from, the same on every rank: rank 0 first cleans up what a kill
    during a save left, then chooses (``checkpoints``, or with ``resume: auto`` the newest
    complete checkpoint). Returns (plan {'prefix': checkpoint prefix or None, ...}, what rank 0
    loaded); ``restore`` applies it."""
    recover_partial(arch_dir, env, logger)
    return resume_sync.decide(cfg, arch_dir, env)


def restore(cfg, arch_dir, model, optimizer, lr_sched, amp, ema, env, logger, plan):
    """Resume the ``resume_plan``: weights, optimizer, LR schedule position, best metric, AMP
    and EMA state; every rank resumes the same state (ppcls.engine.resume_sync). Returns (first
    epoch to run, best {'top1', 'epoch', 'source'}, checkpoint prefix or None)."""
    start_epoch, best = 0, {"top1": -1.0, "epoch": -1}
    plan, loaded = plan
    resume = plan["prefix"]
    if not resume:
        if cfg["resume"] == "auto":
            logger.info(f"resume: auto found no complete checkpoint in {arch_dir}; starting fresh")
        return start_epoch, best, None
    with resume_sync.local_copy(plan, env, logger) as (prefix, origin):
        model_state, opt_state, state = loaded or ckpt.load_checkpoint(prefix)
        usable, _ = ckpt.fit_state_dict(model, model_state, resume + ".pdparams")
        model.set_state_dict(amp.fit_state(model, usable))
        if opt_state is not None:
            optimizer.set_state_dict(ckpt.optimizer_state_for_loading(opt_state, model))
        lr_sched.last_epoch = state["global_step"] - 1
        lr_sched.step()
        start_epoch = state["epoch"] + 1
        best = {"top1": state.get("best_top1", -1.0), "epoch": state.get("best_epoch", -1),
                "source": state.get("best_source", "raw")}
        amp.load_state_dict(state.get("amp"), logger)
        if ema is not None:
            resume_ema(ema, prefix, state, logger)
        numbers = {"epoch": start_epoch, "step": state["global_step"], "lr": optimizer.get_lr(),
                   "best": best}
        digest = resume_sync.state_digest(model, opt_state, ema, numbers) \
            if env.world_size > 1 else None
    resume_sync.check_agreement(digest, env, resume)
    logger.info(f"resumed from {resume}{origin}: continuing at epoch {start_epoch}, step "
                f"{state['global_step']}, lr {optimizer.get_lr():.6f}, best top1 {best['top1']:.5f}"
                + (f"; state digest {digest[:16]}, the same on all {env.world_size} ranks"
                   if digest else ""))
    return start_epoch, best, resume


def check_writable(directory, key="model_save_dir"):
    """Fail at start, not after the first epoch, when checkpoints cannot be written: probe the
    folder, or the nearest one that exists, with a file that is removed again. Creates nothing;
    called after every input has been validated."""
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:
        if not os.path.isdir(existing):
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file")
        probe = os.path.join(existing, f".ppcls-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise TrainingError(f"{key}: cannot write to {directory} ({e.strerror or e}); "
                            f"set -o {key}=<a writable folder>") from None


def best_weights(model, ema, source):
    """best_model: ppcls.pdparams holds the weights that scored best, the other set is saved
    alongside as ppcls_raw.pdparams or ppcls_ema.pdparams."""
    if ema is None:
        return {}
    if source == "ema":
        return {"model_state": ema.state_dict(), "extra_params": {"raw": model.state_dict()}}
    return {"extra_params": {"ema": ema.state_dict()}}


def extra_state(amp, ema):
    """Extra resume state for ppcls.state.json: loss scaling, EMA update count."""
    state = {}
    if amp.enabled:
        state["amp"] = amp.state_dict()
    if ema is not None:
        state.update(ema_decay=ema.decay, ema_updates=ema.updates)
    return state


def resume_ema(ema, resume, state, logger):
    ema_state = ckpt.load_extra_params(resume, "ema")
    if ema_state is None:
        logger.warning(f"{resume}: no EMA weights ({ckpt.PREFIX}_ema.pdparams); the EMA restarts "
                       f"from the resumed weights")
        ema.copy_from_model()
        ema.updates = 0
        return
    usable, _ = ckpt.fit_state_dict(ema.model, ema_state, f"{resume}_ema.pdparams")
    ema.set_state_dict(usable, state.get("ema_updates", 0))


def recover_partial(arch_dir, env, logger):
    """Rank 0 removes (or restores) what a kill during a save left in ``arch_dir``; the other
    ranks wait, so that every rank then finds the same newest checkpoint."""
    if env.rank == 0:
        for action in ckpt.recover_partial(arch_dir):
            logger.info(f"checkpoint recovery: {action}")
    peers.wait_for_all("checkpoint recovery", env.world_size)


def save(model, optimizer, lr_sched, epoch, best, directory, cfg, model_state=None,
         extra_params=None, extra_state=None):
    state = {"epoch": epoch, "global_step": lr_sched.last_epoch, "best_top1": best["top1"],
             "best_epoch": best["epoch"], "best_source": best.get("source", "raw"),
             "arch": cfg["ARCHITECTURE"]["name"], "classes_num": cfg["classes_num"],
             "lr": lr_sched.last_lr, **(extra_state or {})}
    model_state = model_state if model_state is not None else model.state_dict()
    if is_distillation_model(model):    # the student alone too: loads into its plain recipe
        extra_params = dict(extra_params or {}, student=student_state(model_state))
    try:
        ckpt.save_checkpoint(directory, model_state,
                             ckpt.optimizer_state_for_saving(optimizer, model)
                             if optimizer is not None else None, state, extra_params)
    except OSError as e:
        raise TrainingError(f"could not save checkpoint {directory} ({e.strerror or e}); the "
                            f"previous checkpoints are intact. Free disk space or change "
                            f"model_save_dir, then resume with -o resume=auto") from None

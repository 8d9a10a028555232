"""Training: plain functions over a model, a loader and an optimizer."""
import errno
import math
import os
import time

import numpy as np
import paddle

from ..data import BatchMixer, build_dataloader
from ..data.dataset import bad_image_limit
from ..modeling import build_model
from ..modeling.loss import cross_entropy, mix_cross_entropy
from ..optimizer import build_lr_scheduler, build_optimizer
from ..utils import checkpoint as ckpt
from ..utils.logger import get_logger, setup_logger
from ..utils.metrics import topk_correct
from .env import init_env
from .evaluate import evaluate, format_end_line
from . import finetune
from .amp import Amp
from .ema import ModelEMA
from .step import TrainStep
from .static_eval import eval_forward


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, too many bad images, unwritable output)."""


def model_from_config(cfg):
    name = cfg["ARCHITECTURE"]["name"]
    params = dict(cfg["ARCHITECTURE"].get("params") or {})
    try:
        return build_model(name, class_dim=cfg["classes_num"], **params)
    except TypeError as e:
        raise TrainingError(f"{cfg.get('_source', 'config')}: ARCHITECTURE.params does not fit "
                            f"{name}: {e}") from None


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


def _note_bad_images(index, skipped, counters):
    """Count distinct bad images (an item that replaced a bad sample carries the bad sample's
    index), name each once, and stop past the limit."""
    bad = np.asarray(index).reshape(-1)[np.asarray(skipped).reshape(-1) > 0]
    if not bad.size:
        return
    seen = counters.setdefault("bad_seen", set())
    dataset = counters.get("dataset")
    for i in bad.tolist():
        if i not in seen:
            seen.add(i)
            if dataset is not None:
                dataset.report_bad(i)
    counters["bad_images"] = len(seen) + counters.get("missing", 0)
    if counters["bad_images"] > counters.get("bad_limit", math.inf):
        raise TrainingError(
            f"{counters['bad_images']} images failed to load, more than max_bad_images "
            f"allows ({counters['bad_limit']}); run tools/check_dataset.py on the file list")


def _all_finite(finite):
    """Whether the loss is finite on every worker: the ranks must agree to skip or stop, or
    the gradient all-reduce of the others would wait for a rank that left."""
    import paddle.distributed as dist
    if dist.get_world_size() <= 1:
        return finite
    flag = paddle.to_tensor([0.0 if finite else 1.0])
    dist.all_reduce(flag)
    return float(flag.numpy().sum()) == 0.0


def train_one_epoch(model, loader, optimizer, lr_sched, epoch, cfg, mixer=None, counters=None,
                    stepper=None):
    """One pass over ``loader``; returns the epoch's mean loss/top-1 and timing. ``stepper``
    (ppcls.engine.step.TrainStep) does backward/optimizer/schedule steps: gradient
    accumulation, AMP, EMA; the default is a plain step per batch."""
    stepper = stepper or TrainStep(optimizer, lr_sched)
    logger = get_logger()
    counters = counters if counters is not None else {"bad_images": 0, "nan_skips": 0}
    eps = max(0.0, cfg["ls_epsilon"])
    interval = cfg["print_interval"]
    losses, top1s, batch_costs, reader_costs, seen = [], [], [], [], 0
    model.train()
    if cfg.get("freeze_bn"):
        finetune.set_bn_eval(model)
    max_micro = stepper.micro_batches_per_epoch(len(loader))
    tic = time.time()
    for step, (images, labels, index, skipped) in enumerate(loader):
        if step >= max_micro:
            break
        reader_cost = time.time() - tic
        _note_bad_images(index, skipped, counters)
        lr = optimizer.get_lr()
        with stepper.forward_context(model):
            if mixer is not None:
                images, labels_a, labels_b, lam = mixer(images, labels)
            logits = model(images)
            if logits.dtype != paddle.float32:           # AMP: the loss in float32
                logits = logits.astype("float32")
            if mixer is not None:
                loss = mix_cross_entropy(logits, labels_a, labels_b, lam, eps)
            else:
                loss = cross_entropy(logits, labels, eps)
        loss_value = float(loss)
        if not _all_finite(math.isfinite(loss_value)):
            counters["nan_skips"] += 1
            what = (f"loss is {loss_value}" if not math.isfinite(loss_value)
                    else "loss is not finite on another worker")
            where = f"epoch {epoch}, step {step}, lr {lr:.6g}"
            skipping = cfg["nan_policy"] == "skip"
            if skipping and counters["nan_skips"] <= cfg["nan_max_skips"]:
                logger.warning(f"{what} at {where}: batch skipped "
                               f"({counters['nan_skips']}/{cfg['nan_max_skips']} allowed)")
                stepper.skip()
                tic = time.time()
                continue
            raise TrainingError(f"{what} at {where}; "
                                + (f"{cfg['nan_max_skips']} batch(es) already skipped, the "
                                   f"nan_max_skips limit; " if skipping else "")
                                + f"last good checkpoint: "
                                f"{counters.get('last_checkpoint') or 'none saved yet'}. "
                                + ("Lower the lr and resume from it" if skipping else
                                   "Lower the lr or set nan_policy: skip"))
        stepper.backward(loss)
        batch_cost = time.time() - tic
        n = images.shape[0]
        seen += n
        losses.append(loss_value)
        if mixer is None:
            top1s.append(float(topk_correct(logits.numpy(), labels.numpy(), (1,))[1].mean()))
        batch_costs.append(batch_cost)
        reader_costs.append(reader_cost)
        if step % interval == 0:
            bc = float(np.mean(batch_costs[-interval:]))
            logger.info(f"epoch:{epoch:<3d}, train step:{step:<4d}, loss: {loss_value:.5f}, "
                        f"lr: {lr:.6f}, batch_cost: {bc:.5f} s, reader_cost: "
                        f"{np.mean(reader_costs[-interval:]):.5f} s, ips: {n / max(bc, 1e-9):.5f} images/sec.")
        tic = time.time()
    total = float(np.sum(batch_costs))
    return {"loss": float(np.mean(losses)) if losses else float("nan"),
            "top1": float(np.mean(top1s)) if top1s else float("nan"),
            "batch_cost": float(np.mean(batch_costs)) if batch_costs else 0.0,
            "reader_cost": float(np.mean(reader_costs)) if reader_costs else 0.0,
            "ips": seen / max(total, 1e-9), "lr": optimizer.get_lr()}


def resume_path(cfg, arch_dir):
    if cfg["checkpoints"]:
        return cfg["checkpoints"]
    if cfg["resume"] == "auto":
        return ckpt.latest_checkpoint(arch_dir)
    return None


def train(cfg):
    """Train (and validate) from a loaded recipe; returns {'best_top1', 'best_epoch', ...}."""
    env = init_env(cfg["use_gpu"], cfg["cpu_threads"], cfg["seed"])
    logger = setup_logger(env.rank)
    arch = cfg["ARCHITECTURE"]["name"]
    arch_dir = os.path.join(cfg["model_save_dir"], arch)
    seed = cfg["seed"] if cfg["seed"] is not None else 0
    accum = cfg["accum_steps"]
    global_batch = cfg["TRAIN"]["batch_size"]
    if global_batch % (env.world_size * accum):
        raise TrainingError(f"TRAIN.batch_size={global_batch} is not divisible by {env.world_size} "
                            f"worker(s) x accum_steps={accum}; the per-device micro-batch is "
                            f"batch_size / workers / accum_steps")

    train_loader, train_set, train_sampler = build_dataloader(
        dict(cfg["TRAIN"], batch_size=global_batch // accum), "TRAIN", cfg["classes_num"],
        train=True, seed=seed, rank=env.rank, world_size=env.world_size,
        max_missing=cfg["max_bad_images"])
    valid_loader = valid_names = None
    if cfg["validate"]:
        valid_loader, valid_set, _ = build_dataloader(cfg["VALID"], "VALID", cfg["classes_num"],
                                                      train=False, seed=seed, rank=env.rank,
                                                      world_size=env.world_size)
        valid_names = finetune.class_names(cfg["VALID"], valid_set)
    model = model_from_config(cfg)
    if cfg["pretrained_model"]:
        finetune.load_pretrained_for_finetune(model, cfg["pretrained_model"], cfg["classes_num"],
                                              logger)
    if cfg["lrp"] != 1.0 or cfg["freeze_bn"]:
        finetune.setup_finetune(model, cfg, logger)
    steps_per_epoch = len(train_sampler) // accum
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(train_sampler)} micro-batches per epoch but accum_steps={accum}: "
                            f"not one optimizer step; lower accum_steps or TRAIN.batch_size")
    try:                        # values that depend on epochs (warmup_epoch <= epochs, ...)
        lr_sched = build_lr_scheduler(cfg["LEARNING_RATE"], steps_per_epoch, cfg["epochs"])
    except ValueError as e:
        raise TrainingError(f"{cfg.get('_source', 'config')}: LEARNING_RATE.params: {e}") from None
    optimizer = build_optimizer(cfg["OPTIMIZER"], lr_sched, model.parameters())
    amp = Amp.from_config(cfg, on_gpu="gpu" in str(env.device).lower(), logger=logger)
    model, optimizer = amp.decorate(model, optimizer)
    ema = ModelEMA(model, model_from_config(cfg), cfg["ema_decay"]) if cfg["ema_decay"] > 0 else None

    start_epoch, best = 0, {"top1": -1.0, "epoch": -1}
    _recover_partial(arch_dir, env, logger)
    resume = resume_path(cfg, arch_dir)
    loaded = None
    if cfg["resume"] == "auto" and not cfg["checkpoints"]:
        resume, loaded = ckpt.load_latest_checkpoint(arch_dir)
    if resume:
        model_state, opt_state, state = loaded or ckpt.load_checkpoint(resume)
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
            _resume_ema(ema, resume, state, logger)
        logger.info(f"resumed from {resume}: continuing at epoch {start_epoch}, "
                    f"step {state['global_step']}, lr {optimizer.get_lr():.6f}, best top1 {best['top1']:.5f}")
    elif cfg["resume"] == "auto":
        logger.info(f"resume: auto found no complete checkpoint in {arch_dir}; starting fresh")
    if env.rank == 0:           # every input is valid: only now write anything
        check_writable(arch_dir)
        if cfg["vdl_dir"]:
            check_writable(cfg["vdl_dir"], "vdl_dir")
    _log_worker_logs(env, logger)

    per_device = global_batch // env.world_size // accum
    logger.info(f"{arch}: {env.world_size} worker(s) on {env.device}"
                + (f" ({env.threads} CPU threads each)" if env.threads else "")
                + f", per-device batch {per_device}"
                + (f" x {accum} accumulated micro-batches" if accum > 1 else "")
                + f" (global {global_batch}), "
                f"{len(train_set)} training images, {steps_per_epoch} steps/epoch, "
                f"epochs {start_epoch}..{cfg['epochs'] - 1}")
    if env.on_cpu and env.world_size == 1 and env.threads > 1:
        # Depthwise conv, BN and element-wise kernels use one thread in Paddle's dygraph, so one
        # single-threaded process per core trains faster (docs/speed.md: on 2 cores 1.19x for
        # DLA60, 1.76x for ReXNet_1_0).
        logger.info(f"hint: on CPU, {env.threads} processes of 1 thread train faster than 1 of "
                    f"{env.threads}: python -m paddle.distributed.launch --nproc_per_node "
                    f"{env.threads} tools/train.py ... (batch_size stays the global batch)")
    train_model = paddle.DataParallel(model) if env.world_size > 1 else model
    mixer = BatchMixer(cfg["TRAIN"]["mix"], seed + env.rank) if cfg["use_mix"] else None
    vdl = _vdl_writer(cfg, env.rank)
    topk = cfg["topk"]
    missing = len(getattr(train_set, "missing", ()))
    counters = {"bad_images": missing, "missing": missing, "nan_skips": 0, "dataset": train_set,
                "bad_limit": bad_image_limit(cfg["max_bad_images"], len(train_set) + missing),
                "last_checkpoint": resume}
    last = {}
    stepper = TrainStep(optimizer, lr_sched, accum, amp, ema)
    for epoch in range(start_epoch, cfg["epochs"]):
        train_sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        if cfg["seed"] is not None:
            paddle.seed(seed + 1000 * epoch + env.rank)   # dropout etc.: reproducible on resume
        stats = train_one_epoch(train_model, train_loader, optimizer, lr_sched, epoch, cfg,
                                mixer, counters, stepper)
        logger.info(f"END epoch:{epoch:<4d}train loss: {stats['loss']:.5f}, top1: {stats['top1']:.5f}, "
                    f"lr: {stats['lr']:.6f}, batch_cost: {stats['batch_cost']:.5f} s, reader_cost: "
                    f"{stats['reader_cost']:.5f} s, ips: {stats['ips']:.5f} images/sec."
                    + (f" bad images skipped so far: {counters['bad_images']}" if counters["bad_images"] else ""))
        _vdl_add(vdl, "train", stats, epoch)
        if env.world_size > 1:
            average_buffers(model, env.world_size)
            if ema is not None:
                average_buffers(ema.model, env.world_size)
        if valid_loader is not None and ((epoch + 1) % cfg["valid_interval"] == 0
                                         or epoch == cfg["epochs"] - 1):
            metrics, ema_metrics = _validate(model, ema, amp, valid_loader, valid_names, cfg, env,
                                             epoch, stats["lr"], vdl)
            last = metrics
            top1, source = metrics["top1"], "raw"
            if ema_metrics is not None and ema_metrics["top1"] > top1:
                top1, source = ema_metrics["top1"], "ema"
            if top1 > best["top1"]:
                best = {"top1": top1, "epoch": epoch, "source": source}
                if env.rank == 0:
                    _save(model, None, lr_sched, epoch, best, os.path.join(arch_dir, "best_model"),
                          cfg, **_best_weights(model, ema, source))
                logger.info(f"best top1 {best['top1']:.5f} at epoch {epoch}"
                            + (f" ({source} weights)" if ema is not None else "") + ", saved to "
                            f"{os.path.join(arch_dir, 'best_model', 'ppcls')}")
        if env.rank == 0 and ((epoch + 1) % cfg["save_interval"] == 0 or epoch == cfg["epochs"] - 1):
            path = os.path.join(arch_dir, str(epoch))
            _save(model, optimizer, lr_sched, epoch, best, path, cfg,
                  extra_params={"ema": ema.state_dict()} if ema is not None else None,
                  extra_state=_run_state(amp, ema))
            counters["last_checkpoint"] = os.path.join(path, ckpt.PREFIX)
            logger.info(f"saved checkpoint {counters['last_checkpoint']}")
    if vdl is not None:
        vdl.close()
    return {"best_top1": best["top1"], "best_epoch": best["epoch"], "last": last,
            "best_source": best.get("source", "raw"), "bad_images": counters["bad_images"]}


def _validate(model, ema, amp, loader, names, cfg, env, epoch, lr, vdl):
    """Evaluate the raw weights (and the EMA's): END lines (``EMA epoch:...`` for the EMA),
    per-class top-1 with class names when known. Returns (raw metrics, EMA metrics or None)."""
    logger = get_logger()
    nets = [("raw", model)] + ([("ema", ema.model)] if ema is not None else [])
    results = []
    for tag, net in nets:
        rec = finetune.PerClassRecorder(loader) if names else None
        low_precision = tag == "raw" and amp.enabled and amp.plan.level == "O2"
        with eval_forward(net, cfg["use_static_eval"] and not low_precision, env.on_cpu,
                          env.threads) as forward:
            if low_precision:
                forward = amp.eval_forward(forward)
            if rec is not None:
                forward = rec.wrap(forward)
            metrics = evaluate(net, loader if rec is None else rec, cfg["topk"], epoch,
                               env.world_size, cfg["print_interval"], lr, log_steps=False,
                               forward=forward)
        line = format_end_line(epoch, metrics, cfg["topk"])
        logger.info(line if tag == "raw" else "EMA" + line[len("END"):])
        if rec is not None:
            logger.info(("EMA " if tag == "ema" else "")
                        + finetune.format_per_class(rec.result(env.world_size), names))
        _vdl_add(vdl, "valid" if tag == "raw" else "valid_ema", metrics, epoch)
        results.append(metrics)
    return results[0], (results[1] if ema is not None else None)


def _best_weights(model, ema, source):
    """best_model: ppcls.pdparams holds the weights that scored best, the other set is saved
    alongside as ppcls_raw.pdparams or ppcls_ema.pdparams."""
    if ema is None:
        return {}
    if source == "ema":
        return {"model_state": ema.state_dict(), "extra_params": {"raw": model.state_dict()}}
    return {"extra_params": {"ema": ema.state_dict()}}


def _run_state(amp, ema):
    """Extra resume state for ppcls.state.json: loss scaling, EMA update count."""
    state = {}
    if amp.enabled:
        state["amp"] = amp.state_dict()
    if ema is not None:
        state.update(ema_decay=ema.decay, ema_updates=ema.updates)
    return state


def _resume_ema(ema, resume, state, logger):
    ema_state = ckpt.load_extra_params(resume, "ema")
    if ema_state is None:
        logger.warning(f"{resume}: no EMA weights ({ckpt.PREFIX}_ema.pdparams); the EMA restarts "
                       f"from the resumed weights")
        ema.copy_from_model()
        ema.updates = 0
        return
    usable, _ = ckpt.fit_state_dict(ema.model, ema_state, f"{resume}_ema.pdparams")
    ema.set_state_dict(usable, state.get("ema_updates", 0))


def _recover_partial(arch_dir, env, logger):
    """Rank 0 removes (or restores) what a kill during a save left in ``arch_dir``; the other
    ranks wait, so that every rank then finds the same newest checkpoint."""
    if env.rank == 0:
        for action in ckpt.recover_partial(arch_dir):
            logger.info(f"checkpoint recovery: {action}")
    if env.world_size > 1:
        import paddle.distributed as dist
        dist.barrier()


def _log_worker_logs(env, logger):
    """Under paddle.distributed.launch, name every worker's log in rank 0's (which the launcher
    prints): when a worker dies, the launcher may blame a rank that only lost its peer."""
    log_dir = os.environ.get("PADDLE_LOG_DIR")
    if env.world_size > 1 and env.rank == 0 and log_dir:
        logs = ", ".join(os.path.join(log_dir, f"workerlog.{i}") for i in range(env.local_size))
        logger.info(f"worker logs on this node: {logs}")


def average_buffers(model, world_size):
    """Average BN running statistics over the ranks (DataParallel syncs gradients, not
    statistics), so every rank evaluates, and rank 0 saves, the same model. In Paddle they are
    non-trainable parameters (``_mean``, ``_variance``), not buffers."""
    import paddle.distributed as dist
    with paddle.no_grad():
        for _, tensor in model.state_dict().items():
            if not tensor.stop_gradient or not paddle.is_floating_point(tensor):
                continue
            dist.all_reduce(tensor)
            tensor.set_value(tensor / world_size)


def _save(model, optimizer, lr_sched, epoch, best, directory, cfg, model_state=None,
          extra_params=None, extra_state=None):
    state = {"epoch": epoch, "global_step": lr_sched.last_epoch, "best_top1": best["top1"],
             "best_epoch": best["epoch"], "best_source": best.get("source", "raw"),
             "arch": cfg["ARCHITECTURE"]["name"], "classes_num": cfg["classes_num"],
             "lr": lr_sched.last_lr, **(extra_state or {})}
    try:
        ckpt.save_checkpoint(directory, model_state if model_state is not None else model.state_dict(),
                             ckpt.optimizer_state_for_saving(optimizer, model)
                             if optimizer is not None else None, state, extra_params)
    except OSError as e:
        raise TrainingError(f"could not save checkpoint {directory} ({e.strerror or e}); the "
                            f"previous checkpoints are intact. Free disk space or change "
                            f"model_save_dir, then resume with -o resume=auto") from None


def _vdl_writer(cfg, rank):
    if not cfg["vdl_dir"] or rank != 0:
        return None
    try:
        from visualdl import LogWriter
    except ImportError:
        get_logger().warning("vdl_dir is set but visualdl is not installed: pip install visualdl")
        return None
    return LogWriter(logdir=cfg["vdl_dir"])


def _vdl_add(writer, prefix, stats, epoch):
    if writer is None:
        return
    for key, value in stats.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(tag=f"{prefix}/{key}", step=epoch, value=value)


def run_eval(cfg):
    """Evaluate ``pretrained_model`` on VALID; prints the seed's END line."""
    env = init_env(cfg["use_gpu"], cfg["cpu_threads"], cfg["seed"])
    logger = setup_logger(env.rank)
    if not cfg["pretrained_model"]:
        raise TrainingError("evaluation needs weights: -o pretrained_model=output/<ARCH>/best_model/ppcls")
    model = model_from_config(cfg)
    ckpt.load_pretrained(model, cfg["pretrained_model"])
    loader, dataset, _ = build_dataloader(cfg["VALID"], "VALID", cfg["classes_num"], train=False,
                                          rank=env.rank, world_size=env.world_size)
    model.eval()
    names = finetune.class_names(cfg["VALID"], dataset)
    rec = finetune.PerClassRecorder(loader) if names else None
    with eval_forward(model, cfg["use_static_eval"], env.on_cpu, env.threads) as forward:
        metrics = evaluate(model, loader if rec is None else rec, cfg["topk"], 0, env.world_size,
                           cfg["print_interval"], forward=forward if rec is None else rec.wrap(forward))
    logger.info(format_end_line(0, metrics, cfg["topk"]))
    if rec is not None:
        metrics["per_class"] = rec.result(env.world_size)
        logger.info(finetune.format_per_class(metrics["per_class"], names))
    return metrics

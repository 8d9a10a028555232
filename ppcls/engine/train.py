"""Training: plain functions over a model, a loader and an optimizer."""
import math
import os
import time

import numpy as np
import paddle

from ..data import BatchMixer, build_dataloader, class_names
from ..data.dataset import bad_image_limit
from ..modeling.distillation import trained_part
from ..optimizer import build_lr_scheduler, build_optimizer
from ..utils import checkpoint as ckpt
from ..utils.logger import get_logger, setup_logger
from ..utils.metrics import topk_correct
from . import distill, finetune, lr_scale, peers, retention, run_state
from .amp import Amp
from .ema import ModelEMA
from .env import init_env
from .errors import TrainingError
from .evaluate import validate
from .progress import RunClock
from .recipe import criterion_from_config, model_from_config
from .recipe_notes import log_recipe_notes
from .records import metrics_row, open_metrics, vdl_add, vdl_writer
from .step import TrainStep


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
                    stepper=None, criterion=None, clock=None):
    """One pass over ``loader``; returns the epoch's mean loss/top-1 and timing. ``stepper``
    (ppcls.engine.step.TrainStep) does backward/optimizer/schedule steps: gradient
    accumulation, AMP, EMA; the default is a plain step per batch. ``criterion``
    (recipe.criterion_from_config) turns the model's output into (loss, logits scored).
    ``clock`` (ppcls.engine.progress.RunClock) times the steps and adds the ETA to the progress
    lines."""
    stepper = stepper or TrainStep(optimizer, lr_sched)
    criterion = criterion or criterion_from_config(cfg)
    logger = get_logger()
    counters = counters if counters is not None else {"bad_images": 0, "nan_skips": 0}
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
            mix = None
            if mixer is not None:
                images, labels_a, labels_b, lam = mixer(images, labels)
                mix = (labels_a, labels_b, lam)
            loss, logits = criterion(model(images), labels, mix)
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
        if clock is not None:
            clock.step(batch_cost)
        if step % interval == 0:
            bc = float(np.mean(batch_costs[-interval:]))
            logger.info(f"epoch:{epoch:<3d}, train step:{step:<4d}, loss: {loss_value:.5f}, "
                        f"lr: {lr:.6f}, batch_cost: {bc:.5f} s, reader_cost: "
                        f"{np.mean(reader_costs[-interval:]):.5f} s, ips: {n / max(bc, 1e-9):.5f} images/sec."
                        + (clock.epoch_suffix(epoch, step) if clock is not None else ""))
        tic = time.time()
    total = float(np.sum(batch_costs))
    return {"loss": float(np.mean(losses)) if losses else float("nan"),
            "top1": float(np.mean(top1s)) if top1s else float("nan"),
            "batch_cost": float(np.mean(batch_costs)) if batch_costs else 0.0,
            "reader_cost": float(np.mean(reader_costs)) if reader_costs else 0.0,
            "ips": seen / max(total, 1e-9), "lr": optimizer.get_lr()}


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
        valid_names = class_names(cfg["VALID"], valid_set)
    model = model_from_config(cfg)
    plan = run_state.resume_plan(cfg, arch_dir, env, logger)     # agreed by every rank
    distill.load_start_weights(model, cfg, bool(plan[0]["prefix"]), logger)
    if cfg["lrp"] != 1.0 or cfg["freeze_bn"]:
        finetune.setup_finetune(model, cfg, logger)
    steps_per_epoch = len(train_sampler) // accum
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(train_sampler)} micro-batches per epoch but accum_steps={accum}: "
                            f"not one optimizer step; lower accum_steps or TRAIN.batch_size")
    try:                        # values that depend on epochs (warmup_epoch <= epochs, ...)
        lr_sched = build_lr_scheduler(lr_scale.lr_section(cfg, logger), steps_per_epoch,
                                      cfg["epochs"])
    except ValueError as e:
        raise TrainingError(f"{cfg.get('_source', 'config')}: LEARNING_RATE.params: {e}") from None
    optimizer = build_optimizer(cfg["OPTIMIZER"], lr_sched, model.parameters())
    amp = Amp.from_config(cfg, on_gpu="gpu" in str(env.device).lower(), logger=logger)
    model, optimizer = amp.decorate(model, optimizer)
    ema = (ModelEMA(model, model_from_config(cfg, share_frozen_with=model), cfg["ema_decay"])
           if cfg["ema_decay"] > 0 else None)

    start_epoch, best, resume = run_state.restore(cfg, arch_dir, model, optimizer, lr_sched, amp,
                                                  ema, env, logger, plan)
    if env.rank == 0:           # every input is valid: only now write anything
        run_state.check_writable(arch_dir)
        if cfg["vdl_dir"]:
            run_state.check_writable(cfg["vdl_dir"], "vdl_dir")
        retention.plan(arch_dir, cfg, model, optimizer, ema, resume, logger)
    metrics_csv = open_metrics(arch_dir, cfg, start_epoch, env.rank, ema is not None)
    _log_worker_logs(env, logger)

    per_device = global_batch // env.world_size // accum
    logger.info(f"{arch}: {env.world_size} worker(s) on {env.device}"
                + (f" ({env.threads} CPU threads each)" if env.threads else "")
                + f", per-device batch {per_device}"
                + (f" x {accum} accumulated micro-batches" if accum > 1 else "")
                + f" (global {global_batch}), "
                f"{len(train_set)} training images, {steps_per_epoch} steps/epoch, "
                f"epochs {start_epoch}..{cfg['epochs'] - 1}")
    log_recipe_notes(cfg, len(train_set), steps_per_epoch, logger)
    if env.on_cpu and env.world_size == 1 and env.threads > 1:
        # Depthwise conv, BN and element-wise kernels use one thread in Paddle's dygraph, so one
        # single-threaded process per core trains faster (docs/speed.md: on 2 cores 1.19x for
        # DLA60, 1.76x for ReXNet_1_0).
        logger.info(f"hint: on CPU, {env.threads} processes of 1 thread train faster than 1 of "
                    f"{env.threads}: python -m paddle.distributed.launch --nproc_per_node "
                    f"{env.threads} tools/train.py ... (batch_size stays the global batch)")
    peers.wait_for_all("start-up", env.world_size)     # DataParallel broadcasts the weights
    train_model = paddle.DataParallel(model) if env.world_size > 1 else model
    mixer = BatchMixer(cfg["TRAIN"]["mix"], seed + env.rank) if cfg["use_mix"] else None
    vdl = vdl_writer(cfg, env.rank)
    topk = cfg["topk"]
    missing = len(getattr(train_set, "missing", ()))
    counters = {"bad_images": missing, "missing": missing, "nan_skips": 0, "dataset": train_set,
                "bad_limit": bad_image_limit(cfg["max_bad_images"], len(train_set) + missing),
                "last_checkpoint": resume}
    last = {}
    stepper = TrainStep(optimizer, lr_sched, accum, amp, ema)
    criterion = criterion_from_config(cfg, logger)
    clock = RunClock(steps_per_epoch * accum, cfg["epochs"], lambda e: _validates(cfg, e))
    for epoch in range(start_epoch, cfg["epochs"]):
        train_sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        if cfg["seed"] is not None:
            paddle.seed(seed + 1000 * epoch + env.rank)   # dropout etc.: reproducible on resume
        clock.begin_epoch()
        epoch_lr, metrics, ema_metrics = optimizer.get_lr(), None, None
        stats = train_one_epoch(train_model, train_loader, optimizer, lr_sched, epoch, cfg,
                                mixer, counters, stepper, criterion, clock)
        clock.train_done()
        logger.info(f"END epoch:{epoch:<4d}train loss: {stats['loss']:.5f}, top1: {stats['top1']:.5f}, "
                    f"lr: {stats['lr']:.6f}, batch_cost: {stats['batch_cost']:.5f} s, reader_cost: "
                    f"{stats['reader_cost']:.5f} s, ips: {stats['ips']:.5f} images/sec."
                    + (f" bad images skipped so far: {counters['bad_images']}" if counters["bad_images"] else "")
                    + clock.run_suffix(epoch, validated=False))
        vdl_add(vdl, "train", stats, epoch)
        if env.world_size > 1:
            # a frozen teacher is the same on every rank: an all-reduce sum divided by 3 ranks
            # is not always the value again
            average_buffers(trained_part(model), env.world_size)
            if ema is not None:
                average_buffers(trained_part(ema.model), env.world_size)
        if valid_loader is not None and _validates(cfg, epoch):
            metrics, ema_metrics = validate(model, ema, amp, valid_loader, valid_names, cfg, env,
                                            epoch, stats["lr"], vdl, clock)
            last = metrics
            top1, source = metrics["top1"], "raw"
            if ema_metrics is not None and ema_metrics["top1"] > top1:
                top1, source = ema_metrics["top1"], "ema"
            if top1 > best["top1"]:
                best = {"top1": top1, "epoch": epoch, "source": source}
                if env.rank == 0:           # the only rank that writes
                    run_state.save(model, None, lr_sched, epoch, best,
                                   os.path.join(arch_dir, "best_model"), cfg,
                                   **run_state.best_weights(model, ema, source))
                    logger.info(f"best top1 {best['top1']:.5f} at epoch {epoch}"
                                + (f" ({source} weights)" if ema is not None else "") + ", saved to "
                                f"{os.path.join(arch_dir, 'best_model', 'ppcls')}")
        if metrics_csv is not None:     # before the save: a kill between the two re-runs the
            # epoch on resume and replaces its row; the other order would lose the row
            metrics_csv.add(epoch, metrics_row(stats, epoch_lr, metrics, ema_metrics, cfg["topk"],
                                               clock.elapsed(), env.world_size))
        path = os.path.join(arch_dir, str(epoch))
        if (epoch + 1) % cfg["save_interval"] == 0 or epoch == cfg["epochs"] - 1:
            counters["last_checkpoint"] = os.path.join(path, ckpt.PREFIX)
            if env.rank == 0:
                run_state.save(model, optimizer, lr_sched, epoch, best, path, cfg,
                               extra_params={"ema": ema.state_dict()} if ema is not None else None,
                               extra_state=run_state.extra_state(amp, ema))
                logger.info(f"saved checkpoint {counters['last_checkpoint']}")
                removed = retention.rotate(arch_dir, cfg["keep_checkpoints"], epoch)
                if removed:
                    logger.info(f"removed {', '.join(removed)} (keep_checkpoints: "
                                f"{cfg['keep_checkpoints']})")
        # rank 0 may have saved for minutes: meet outside any gloo collective (30 s limit)
        peers.wait_for_all(f"epoch {epoch} (rank 0 saving)", env.world_size)
        clock.end_epoch()
    if vdl is not None:
        vdl.close()
    return {"best_top1": best["top1"], "best_epoch": best["epoch"], "last": last,
            "best_source": best.get("source", "raw"), "bad_images": counters["bad_images"]}


def _validates(cfg, epoch):
    return bool(cfg["validate"]) and ((epoch + 1) % cfg["valid_interval"] == 0
                                      or epoch == cfg["epochs"] - 1)


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

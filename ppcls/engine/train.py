"""Training: plain functions over a model, a loader and an optimizer."""
import math
import os
import time

import numpy as np
import paddle

from ..data import BatchMixer, build_dataloader
from ..modeling import build_model
from ..modeling.loss import cross_entropy, mix_cross_entropy
from ..optimizer import build_lr_scheduler, build_optimizer
from ..utils import checkpoint as ckpt
from ..utils.logger import get_logger, setup_logger
from ..utils.metrics import topk_correct
from .env import init_env
from .evaluate import evaluate, format_end_line


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


def check_writable(directory):
    """Fail at start, not after the first epoch, when checkpoints cannot be written."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise TrainingError(f"model_save_dir {directory} is not writable ({e.strerror}); "
                            f"set -o model_save_dir=<a writable folder>") from None


def bad_image_limit(max_bad_images, num_samples):
    return int(max_bad_images * num_samples) if max_bad_images < 1 else int(max_bad_images)


def train_one_epoch(model, loader, optimizer, lr_sched, epoch, cfg, mixer=None, counters=None):
    """One pass over ``loader``; returns the epoch's mean loss/top-1 and timing."""
    logger = get_logger()
    counters = counters if counters is not None else {"bad_images": 0, "nan_skips": 0}
    eps = max(0.0, cfg["ls_epsilon"])
    interval = cfg["print_interval"]
    losses, top1s, batch_costs, reader_costs, seen = [], [], [], [], 0
    model.train()
    tic = time.time()
    for step, (images, labels, _, skipped) in enumerate(loader):
        reader_cost = time.time() - tic
        counters["bad_images"] += int(skipped.sum())
        if counters["bad_images"] > counters.get("bad_limit", math.inf):
            raise TrainingError(
                f"{counters['bad_images']} images failed to decode, more than max_bad_images "
                f"allows ({counters['bad_limit']}); run tools/check_dataset.py on the file list")
        lr = optimizer.get_lr()
        if mixer is not None:
            images, labels_a, labels_b, lam = mixer(images, labels)
            logits = model(images)
            loss = mix_cross_entropy(logits, labels_a, labels_b, lam, eps)
        else:
            logits = model(images)
            loss = cross_entropy(logits, labels, eps)
        loss_value = float(loss)
        if not math.isfinite(loss_value):
            counters["nan_skips"] += 1
            where = f"epoch {epoch}, step {step}, lr {lr:.6g}"
            if cfg["nan_policy"] == "skip" and counters["nan_skips"] <= cfg["nan_max_skips"]:
                logger.warning(f"loss is {loss_value} at {where}: batch skipped "
                               f"({counters['nan_skips']}/{cfg['nan_max_skips']} allowed)")
                optimizer.clear_grad()
                lr_sched.step()
                tic = time.time()
                continue
            raise TrainingError(f"loss is {loss_value} at {where}; last good checkpoint: "
                                f"{counters.get('last_checkpoint') or 'none saved yet'}. "
                                f"Lower the lr or set nan_policy: skip")
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        lr_sched.step()
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
    if env.rank == 0:
        check_writable(arch_dir)
    seed = cfg["seed"] if cfg["seed"] is not None else 0

    train_loader, train_set, train_sampler = build_dataloader(
        cfg["TRAIN"], "TRAIN", cfg["classes_num"], train=True, seed=seed,
        rank=env.rank, world_size=env.world_size)
    valid_loader = None
    if cfg["validate"]:
        valid_loader, _, _ = build_dataloader(cfg["VALID"], "VALID", cfg["classes_num"],
                                              train=False, seed=seed, rank=env.rank,
                                              world_size=env.world_size)
    model = model_from_config(cfg)
    if cfg["pretrained_model"]:
        report = ckpt.load_pretrained(model, cfg["pretrained_model"])
        logger.info(f"loaded pretrained weights {cfg['pretrained_model']} "
                    f"({len(model.state_dict()) - len(report['missing'])} tensors)")
    steps_per_epoch = len(train_sampler)
    lr_sched = build_lr_scheduler(cfg["LEARNING_RATE"], steps_per_epoch, cfg["epochs"])
    optimizer = build_optimizer(cfg["OPTIMIZER"], lr_sched, model.parameters())

    start_epoch, best = 0, {"top1": -1.0, "epoch": -1}
    resume = resume_path(cfg, arch_dir)
    if resume:
        model_state, opt_state, state = ckpt.load_checkpoint(resume)
        usable, _ = ckpt.fit_state_dict(model, model_state, resume + ".pdparams")
        model.set_state_dict(usable)
        if opt_state is not None:
            optimizer.set_state_dict(ckpt.optimizer_state_for_loading(opt_state, model))
        lr_sched.last_epoch = state["global_step"] - 1
        lr_sched.step()
        start_epoch = state["epoch"] + 1
        best = {"top1": state.get("best_top1", -1.0), "epoch": state.get("best_epoch", -1)}
        logger.info(f"resumed from {resume}: continuing at epoch {start_epoch}, "
                    f"step {state['global_step']}, lr {optimizer.get_lr():.6f}, best top1 {best['top1']:.5f}")
    elif cfg["resume"] == "auto":
        logger.info(f"resume: auto found no complete checkpoint in {arch_dir}; starting fresh")

    per_device = cfg["TRAIN"]["batch_size"] // env.world_size
    logger.info(f"{arch}: {env.world_size} worker(s) on {env.device}"
                + (f" ({env.threads} CPU threads each)" if env.threads else "")
                + f", per-device batch {per_device} (global {cfg['TRAIN']['batch_size']}), "
                f"{len(train_set)} training images, {steps_per_epoch} steps/epoch, "
                f"epochs {start_epoch}..{cfg['epochs'] - 1}")
    train_model = paddle.DataParallel(model) if env.world_size > 1 else model
    mixer = BatchMixer(cfg["TRAIN"]["mix"], seed + env.rank) if cfg["use_mix"] else None
    vdl = _vdl_writer(cfg, env.rank)
    topk = cfg["topk"]
    counters = {"bad_images": 0, "nan_skips": 0,
                "bad_limit": bad_image_limit(cfg["max_bad_images"], len(train_set)),
                "last_checkpoint": resume}
    last = {}
    for epoch in range(start_epoch, cfg["epochs"]):
        train_sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        if cfg["seed"] is not None:
            paddle.seed(seed + 1000 * epoch + env.rank)   # dropout etc.: reproducible on resume
        stats = train_one_epoch(train_model, train_loader, optimizer, lr_sched, epoch, cfg,
                                mixer, counters)
        logger.info(f"END epoch:{epoch:<4d}train loss: {stats['loss']:.5f}, top1: {stats['top1']:.5f}, "
                    f"lr: {stats['lr']:.6f}, batch_cost: {stats['batch_cost']:.5f} s, reader_cost: "
                    f"{stats['reader_cost']:.5f} s, ips: {stats['ips']:.5f} images/sec."
                    + (f" bad images skipped so far: {counters['bad_images']}" if counters["bad_images"] else ""))
        _vdl_add(vdl, "train", stats, epoch)
        if env.world_size > 1:
            average_buffers(model, env.world_size)
        if valid_loader is not None and ((epoch + 1) % cfg["valid_interval"] == 0
                                         or epoch == cfg["epochs"] - 1):
            metrics = evaluate(model, valid_loader, topk, epoch, env.world_size,
                               cfg["print_interval"], stats["lr"], log_steps=False)
            logger.info(format_end_line(epoch, metrics, topk))
            _vdl_add(vdl, "valid", metrics, epoch)
            last = metrics
            if metrics["top1"] > best["top1"]:
                best = {"top1": metrics["top1"], "epoch": epoch}
                if env.rank == 0:
                    _save(model, None, lr_sched, epoch, best, os.path.join(arch_dir, "best_model"), cfg)
                logger.info(f"best top1 {best['top1']:.5f} at epoch {epoch}, saved to "
                            f"{os.path.join(arch_dir, 'best_model', 'ppcls')}")
        if env.rank == 0 and ((epoch + 1) % cfg["save_interval"] == 0 or epoch == cfg["epochs"] - 1):
            path = os.path.join(arch_dir, str(epoch))
            _save(model, optimizer, lr_sched, epoch, best, path, cfg)
            counters["last_checkpoint"] = os.path.join(path, ckpt.PREFIX)
            logger.info(f"saved checkpoint {counters['last_checkpoint']}")
    if vdl is not None:
        vdl.close()
    return {"best_top1": best["top1"], "best_epoch": best["epoch"], "last": last,
            "bad_images": counters["bad_images"]}


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


def _save(model, optimizer, lr_sched, epoch, best, directory, cfg):
    state = {"epoch": epoch, "global_step": lr_sched.last_epoch, "best_top1": best["top1"],
             "best_epoch": best["epoch"], "arch": cfg["ARCHITECTURE"]["name"],
             "classes_num": cfg["classes_num"], "lr": lr_sched.last_lr}
    try:
        ckpt.save_checkpoint(directory, model.state_dict(),
                             ckpt.optimizer_state_for_saving(optimizer, model)
                             if optimizer is not None else None, state)
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
    metrics = evaluate(model, loader, cfg["topk"], 0, env.world_size, cfg["print_interval"])
    logger.info(format_end_line(0, metrics, cfg["topk"]))
    return metrics

"""Evaluation: exact over the whole set, whatever the number of workers.

Every rank scores its shard per sample (top-1 hit, top-k hit, loss) together with the sample
index; the ranks' results are gathered and the padding repeats dropped by index, so 1 and N
workers report identical metrics.
"""
import time

import numpy as np
import paddle
import paddle.distributed as dist

from ..data import build_dataloader, class_names
from ..modeling.loss import cross_entropy
from ..utils.logger import get_logger, setup_logger
from ..utils.metrics import format_per_class, per_class_top1, topk_correct
from .distill import load_scored_weights
from . import peers
from .env import init_env
from .errors import TrainingError
from .recipe import scored_model_from_config
from .records import vdl_add
from .static_eval import eval_forward


def gather_scores(parts, world_size):
    if world_size <= 1:
        return parts
    # a rank may finish its shard long after the others (a slow predictor build): meet
    # outside any gloo collective, which would abort after 30 s
    peers.wait_for_all("evaluation", world_size)
    gathered = []
    dist.all_gather_object(gathered, parts)
    return {k: np.concatenate([g[k] for g in gathered]) for k in parts}


def evaluate(model, loader, topk=5, epoch=0, world_size=1, print_interval=10, lr=0.0,
             log_steps=True, forward=None):
    """Score ``model`` (in eval mode; its train/eval mode is restored afterwards).

    ``forward`` may replace ``model.__call__`` (e.g. a static-graph copy of the model).
    Returns {'top1', f'top{k}', 'loss', 'num_samples', 'batch_cost', 'reader_cost', 'ips'}.
    """
    was_training = model.training
    model.eval()
    try:
        return _evaluate(forward or model, loader, topk, epoch, world_size, print_interval, lr,
                         log_steps)
    finally:
        if was_training:
            model.train()


def _evaluate(forward, loader, topk, epoch, world_size, print_interval, lr, log_steps):
    logger = get_logger()
    idx_all, hit1, hitk, losses = [], [], [], []
    batch_costs, reader_costs, seen = [], [], 0
    tic = time.time()
    with paddle.no_grad():
        for step, batch in enumerate(loader):
            images, labels, index = batch[0], batch[1], batch[2]
            reader_costs.append(time.time() - tic)
            logits = forward(images)
            loss = cross_entropy(logits, labels, reduction="none").numpy()
            hits = topk_correct(logits.numpy(), labels.numpy(), (1, topk))
            idx_all.append(index.numpy().reshape(-1))
            hit1.append(hits[1])
            hitk.append(hits[topk])
            losses.append(loss)
            batch_costs.append(time.time() - tic)
            seen += images.shape[0]
            if log_steps and step % print_interval == 0:
                bc = np.mean(batch_costs[-print_interval:])
                logger.info(
                    f"epoch:{epoch:<3d}, valid step:{step:<4d}, top1: {hits[1].mean():.5f}, "
                    f"top{topk}: {hits[topk].mean():.5f}, loss: {loss.mean():.5f}, lr: {lr:.6f}, "
                    f"batch_cost: {bc:.5f} s, reader_cost: {np.mean(reader_costs[-print_interval:]):.5f} s, "
                    f"ips: {images.shape[0] / max(bc, 1e-9):.5f} images/sec.")
            tic = time.time()
    empty = np.zeros(0)
    parts = {"index": np.concatenate(idx_all) if idx_all else empty.astype(np.int64),
             "hit1": np.concatenate(hit1) if hit1 else empty,
             "hitk": np.concatenate(hitk) if hitk else empty,
             "loss": np.concatenate(losses) if losses else empty}
    parts = gather_scores(parts, world_size)
    _, first = np.unique(parts["index"], return_index=True)      # drop the padding repeats
    n = len(first)
    total_cost = float(np.sum(batch_costs))
    return {"top1": float(parts["hit1"][first].mean()) if n else 0.0,
            f"top{topk}": float(parts["hitk"][first].mean()) if n else 0.0,
            "loss": float(parts["loss"][first].mean()) if n else 0.0,
            "num_samples": n, "batch_cost": float(np.mean(batch_costs)) if batch_costs else 0.0,
            "reader_cost": float(np.mean(reader_costs)) if reader_costs else 0.0,
            "batch_cost_sum": total_cost, "ips": seen / max(total_cost, 1e-9)}


def format_end_line(epoch, metrics, topk=5):
    return (f"END epoch:{epoch:<4d}valid top1: {metrics['top1']:.5f}, top{topk}: "
            f"{metrics[f'top{topk}']:.5f}, loss: {metrics['loss']:.5f},  batch_cost: "
            f"{metrics['batch_cost']:.5f} s, reader_cost: {metrics['reader_cost']:.5f} s, "
            f"batch_cost_sum: {metrics['batch_cost_sum']:.5f} s, ips: {metrics['ips']:.5f} images/sec.")


class PerClassRecorder:
    """Wraps the loader and the forward given to ``evaluate`` to record (index, label,
    prediction) per sample; ``result`` gives per-class top-1 exactly over the whole set
    (ranks gathered, padding repeats dropped by index, as ``evaluate`` does)."""

    def __init__(self, loader):
        self._loader = loader
        self.index, self.labels, self.preds = [], [], []

    def __iter__(self):
        for batch in self._loader:
            self.labels.append(batch[1].numpy().reshape(-1))
            self.index.append(batch[2].numpy().reshape(-1))
            yield batch

    def __len__(self):
        return len(self._loader)

    def wrap(self, forward):
        def fn(images):
            logits = forward(images)
            self.preds.append(np.asarray(logits.numpy()).argmax(axis=1).reshape(-1))
            return logits
        return fn

    def result(self, world_size=1):
        if not self.index:
            return {}
        parts = {"index": np.concatenate(self.index), "label": np.concatenate(self.labels),
                 "pred": np.concatenate(self.preds)}
        parts = gather_scores(parts, world_size)
        _, first = np.unique(parts["index"], return_index=True)
        return per_class_top1(parts["label"][first], parts["pred"][first])


def validate(model, ema, amp, loader, names, cfg, env, epoch, lr, vdl, clock=None):
    """Evaluate the raw weights (and the EMA's): END lines (``EMA epoch:...`` for the EMA),
    per-class top-1 with class names when known; with ``clock`` (progress.RunClock) the END
    lines end with the run's ETA. Returns (raw metrics, EMA metrics or None)."""
    logger = get_logger()
    t0 = time.time()
    nets = [("raw", model)] + ([("ema", ema.model)] if ema is not None else [])
    results = []
    for tag, net in nets:
        rec = PerClassRecorder(loader) if names else None
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
        if clock is not None:
            if tag == "raw":        # the EMA's evaluation, still to come, takes as long
                clock.valid_done((time.time() - t0) * len(nets))
            line += clock.run_suffix(epoch, validated=True)
        logger.info(line if tag == "raw" else "EMA" + line[len("END"):])
        if rec is not None:
            logger.info(("EMA " if tag == "ema" else "")
                        + format_per_class(rec.result(env.world_size), names))
        vdl_add(vdl, "valid" if tag == "raw" else "valid_ema", metrics, epoch)
        results.append(metrics)
    return results[0], (results[1] if ema is not None else None)


def run_eval(cfg):
    """Evaluate ``pretrained_model`` on VALID (a distillation recipe's student); prints the
    seed's END line."""
    env = init_env(cfg["use_gpu"], cfg["cpu_threads"], cfg["seed"])
    logger = setup_logger(env.rank)
    if not cfg["pretrained_model"]:
        raise TrainingError("evaluation needs weights: -o pretrained_model=output/<ARCH>/best_model/ppcls")
    model = scored_model_from_config(cfg)[0]
    load_scored_weights(model, cfg)
    loader, dataset, _ = build_dataloader(cfg["VALID"], "VALID", cfg["classes_num"], train=False,
                                          rank=env.rank, world_size=env.world_size)
    model.eval()
    names = class_names(cfg["VALID"], dataset)
    rec = PerClassRecorder(loader) if names else None
    with eval_forward(model, cfg["use_static_eval"], env.on_cpu, env.threads) as forward:
        metrics = evaluate(model, loader if rec is None else rec, cfg["topk"], 0, env.world_size,
                           cfg["print_interval"], forward=forward if rec is None else rec.wrap(forward))
    logger.info(format_end_line(0, metrics, cfg["topk"]))
    if rec is not None:
        metrics["per_class"] = rec.result(env.world_size)
        logger.info(format_per_class(metrics["per_class"], names))
    return metrics

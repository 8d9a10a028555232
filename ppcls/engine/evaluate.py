"""Evaluation: exact over the whole set, whatever the number of workers.

Every rank scores its shard per sample (top-1 hit, top-k hit, loss) together with the sample
index; the ranks' results are gathered and the padding repeats dropped by index, so 1 and N
workers report identical metrics.
"""
import time

import numpy as np
import paddle
import paddle.distributed as dist

from ..modeling.loss import cross_entropy
from ..utils.logger import get_logger
from ..utils.metrics import topk_correct


def gather_scores(parts, world_size):
    if world_size <= 1:
        return parts
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

"""What a run records besides its log: VisualDL scalars (``vdl_dir``) and the per-epoch
``model_save_dir/<ARCH>/metrics.csv``."""
import csv
import math
import os

from ..utils.logger import get_logger

METRICS_FILE = "metrics.csv"


def metrics_columns(topk=5, ema=False):
    """lr: the lr the epoch started with; train_*: means over the epoch's steps (train_top1 is
    empty with mixup/cutmix); valid_*: the whole validation set, empty in epochs without
    validation; valid_ema_top1: the EMA weights' (with ema_decay > 0); epoch_seconds: wall time
    of the epoch's training and validation (the row is written before the checkpoint is);
    images_per_sec: training images per second, all workers together."""
    return (["epoch", "lr", "train_loss", "train_top1", "valid_loss", "valid_top1",
             f"valid_top{topk}"] + (["valid_ema_top1"] if ema else [])
            + ["epoch_seconds", "images_per_sec"])


def vdl_writer(cfg, rank):
    if not cfg["vdl_dir"] or rank != 0:
        return None
    try:
        from visualdl import LogWriter
    except ImportError:
        get_logger().warning("vdl_dir is set but visualdl is not installed: pip install visualdl")
        return None
    return LogWriter(logdir=cfg["vdl_dir"])


def vdl_add(writer, prefix, stats, epoch):
    if writer is None:
        return
    for key, value in stats.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(tag=f"{prefix}/{key}", step=epoch, value=value)


def _cell(value):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class MetricsCsv:
    """``<arch_dir>/metrics.csv``, one row per epoch, rewritten whole (temporary file + rename)
    at each epoch so that a kill never leaves half a row. Opening it for a run that starts at
    ``start_epoch`` drops the rows of epochs >= start_epoch: a resumed run re-runs them from
    the checkpoint, and their rows are replaced, never doubled. Only rank 0 writes (others
    get ``None`` from ``open_metrics``)."""

    def __init__(self, arch_dir, columns, start_epoch):
        self.path = os.path.join(arch_dir, METRICS_FILE)
        self.columns = list(columns)
        self.rows = {}
        if os.path.isfile(self.path):
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                for name in reader.fieldnames or []:
                    if name not in self.columns:
                        self.columns.append(name)
                for row in reader:
                    try:
                        epoch = int(row["epoch"])
                    except (KeyError, TypeError, ValueError):
                        continue
                    if epoch < start_epoch:
                        self.rows[epoch] = row
            self._write()

    def add(self, epoch, values):
        self.rows[epoch] = {"epoch": epoch, **{k: _cell(v) for k, v in values.items()}}
        for name in values:
            if name not in self.columns:
                self.columns.append(name)
        self._write()

    def _write(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            for epoch in sorted(self.rows):
                writer.writerow({c: self.rows[epoch].get(c, "") for c in self.columns})
        os.replace(tmp, self.path)


def open_metrics(arch_dir, cfg, start_epoch, rank, ema=False):
    if rank != 0:
        return None
    return MetricsCsv(arch_dir, metrics_columns(cfg["topk"], ema), start_epoch)


def metrics_row(stats, lr, metrics, ema_metrics, topk, seconds, world_size):
    """The csv values of one epoch from train_one_epoch's stats and validate's metrics."""
    row = {"lr": lr, "train_loss": stats["loss"], "train_top1": stats["top1"],
           "epoch_seconds": seconds, "images_per_sec": stats["ips"] * world_size}
    if metrics:
        row.update(valid_loss=metrics["loss"], valid_top1=metrics["top1"],
                   **{f"valid_top{topk}": metrics.get(f"top{topk}")})
    if ema_metrics:
        row["valid_ema_top1"] = ema_metrics["top1"]
    return row

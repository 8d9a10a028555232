"""What a run records besides its log: VisualDL scalars (``vdl_dir``)."""
import math

from ..utils.logger import get_logger


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

"""Batches of NumPy arrays -> tensors, with the images normalised on the way.

On the CPU a new 38 MB float32 batch (64 x 3 x 224 x 224) costs more to allocate than to fill:
glibc maps allocations above 32 MB afresh each time, and the page faults of fresh memory take
~5x the table lookup that normalises it (docs/speed.md). So CPU batches are written into
recycled NumPy buffers and wrapped as tensors without a copy; a buffer is reused only when
nothing refers to it any more -- the tensor, any view of it and the autograd graph all hold a
reference to the NumPy array (tests/test_data_speed.py checks this), so a batch that is still
alive is never overwritten.
"""
import sys

import numpy as np
import paddle


class BufferPool:
    """Reusable NumPy arrays by (shape, dtype): ``get`` returns one that nothing else refers
    to, or a new one (kept for reuse, up to ``per_shape``)."""

    def __init__(self, per_shape=6):
        self.per_shape = per_shape
        self.buffers = {}

    def get(self, shape, dtype):
        key = (tuple(shape), np.dtype(dtype).str)
        pool = self.buffers.setdefault(key, [])
        for i in range(len(pool)):
            if sys.getrefcount(pool[i]) == 2:          # the pool's list and this call only
                return pool[i]
        buf = np.empty(shape, dtype)
        if len(pool) < self.per_shape:
            pool.append(buf)
        return buf


_POOL = BufferPool()


def on_cpu(place):
    if place is None:
        return paddle.get_device().startswith("cpu")
    return isinstance(place, paddle.CPUPlace) or str(place).lower().startswith(("cpu", "place(cpu"))


def wrap(array):
    """A CPU tensor over ``array`` itself (no copy); it keeps the array alive."""
    return paddle.Tensor(array, paddle.CPUPlace(), False, True)


def to_tensors(normalize, place, arrays, pool=_POOL):
    """Stacked fields -> tensors on ``place`` (None: the current device). The arrays may be
    reused by their owner afterwards (each field is copied or normalised out of them). The
    first field (the images) goes through ``normalize`` (a transforms.BatchNormalize) when
    given: on the CPU by table lookup, elsewhere on the device after sending uint8 (4x less
    to copy)."""
    cpu = on_cpu(place)
    out = []
    for i, a in enumerate(arrays):
        if i == 0 and normalize is not None:
            if cpu:
                out.append(wrap(normalize.numpy(a, out=pool.get(a.shape, np.float32))))
            else:
                out.append(normalize(paddle.to_tensor(a, place=place)))
        elif cpu and a.nbytes >= 1 << 16:
            buf = pool.get(a.shape, a.dtype)
            np.copyto(buf, a)
            out.append(wrap(buf))
        else:
            out.append(paddle.to_tensor(a, place=place))
    return out

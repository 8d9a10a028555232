"""The data loader: worker processes forked once and kept across epochs, each batch written
into a reused shared-memory slot.

Paddle's DataLoader (3.3) forks its workers anew every epoch, and moves every batch through a
shared-memory file created for it: each worker writes ~10 MB per batch of 64 uint8 224x224
images into fresh pages, 10-20% of its time (docs/speed.md). Here each worker owns ``prefetch``
slots, shared memory it creates once (and grows if a batch needs more), stacks the items of a
batch straight into one and sends a few bytes saying where; the main process copies the batch
out into tensors -- normalising uint8 images on the way when the dataset leaves that to the
batch (transforms.BatchNormalize) -- and hands the slot back.

Seeds: an item is a function of (seed, epoch, index) (ClassificationDataset reseeds per
sample) and every task carries the epoch the dataset had when the pass began, so persistent
workers see each epoch's seeds, and a batch is the same whichever worker made it, with any
number of workers (0: in this process).
"""
import collections
import mmap
import os
import pickle
import signal
import tempfile
import traceback
import weakref

import numpy as np

_WORKER_ID = None           # inside a worker process: its number


def worker_id():
    """The number of the loader worker this process is, or None outside the workers."""
    return _WORKER_ID


class LoaderWorkerError(RuntimeError):
    """A loader worker died, or failed with an error that could not be passed on as it was."""


class SupersededPass(RuntimeError):
    """Resuming a pass after a newer one began (the workers serve the newest only)."""


class _WorkerTraceback(Exception):
    """The traceback of an error raised in a worker (shown as the cause of the re-raised one)."""


def fork_available():
    import multiprocessing
    return "fork" in multiprocessing.get_all_start_methods()


# ----------------------------------------------------------------------------- collation
def batch_layout(items):
    """[(shape, dtype)] of the stacked fields of ``items`` (tuples of arrays / NumPy scalars)
    and the bytes they need; every item must have the first one's shapes and dtypes."""
    first = [np.asarray(f) for f in items[0]]
    layout = [((len(items), *a.shape), a.dtype) for a in first]
    for j, item in enumerate(items[1:], 1):
        if len(item) != len(first):
            raise ValueError(f"loader: item {j} of a batch has {len(item)} fields, item 0 "
                             f"{len(first)}")
        for k, (f, a) in enumerate(zip(item, first)):
            f = np.asarray(f)
            if f.shape != a.shape or f.dtype != a.dtype:
                raise ValueError(f"loader: the items of a batch must have the same shape; field "
                                 f"{k}: {a.dtype} {list(a.shape)} in item 0, {f.dtype} "
                                 f"{list(f.shape)} in item {j} (crop or resize to a fixed size)")
    offsets, total = [], 0
    for shape, dtype in layout:
        offsets.append(total)
        total += -(-int(np.prod(shape)) * dtype.itemsize // 64) * 64     # 64-byte aligned
    return [(o, s, d.str) for o, (s, d) in zip(offsets, layout)], total


def stack_into(items, layout, buffer=None):
    """The fields of ``items`` stacked as arrays laid out as ``layout`` in ``buffer`` (a
    writable buffer; new arrays when None)."""
    arrays = []
    for k, (offset, shape, dtype) in enumerate(layout):
        if buffer is None:
            a = np.empty(shape, dtype)
        else:
            a = np.ndarray(shape, dtype, buffer=buffer, offset=offset)
        for j, item in enumerate(items):
            a[j] = item[k]
        arrays.append(a)
    return arrays


def stack_items(items):
    return stack_into(items, batch_layout(items)[0])


# ----------------------------------------------------------------------------- workers
def _pack_error(e):
    tb = traceback.format_exc()
    try:
        blob = pickle.dumps(e)
        pickle.loads(blob)
    except Exception:  # noqa: BLE001 - any error that does not survive pickling
        blob = None
    return blob, f"{type(e).__name__}: {e}", tb


def _shared_file(size):
    """A file descriptor of ``size`` bytes of shared memory without a name."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("ppcls-loader-slot")
    else:
        where = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryFile(dir=where) as f:         # unlinked from the start
            fd = os.dup(f.fileno())
    os.ftruncate(fd, size)
    return fd


def _worker_loop(dataset, conn, wid, init_fn, prefetch):
    """One worker: run tasks (gen, seq, epoch, slot, indices) until None, answering each with
    (gen, seq, slot, 'ok', (new slot size or None, layout)) -- a new slot's file descriptor
    follows on the pipe -- or (..., 'error', packed error)."""
    global _WORKER_ID
    from multiprocessing.reduction import send_handle
    _WORKER_ID = wid
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # Ctrl-C: the main process stops us
    slots = [None] * prefetch
    init_error = None
    try:
        if init_fn is not None:
            init_fn(wid)
    except Exception as e:  # noqa: BLE001 - reported with the first task
        init_error = _pack_error(e)
    try:
        while True:
            try:
                task = conn.recv()
            except EOFError:
                return
            if task is None:
                return
            gen, seq, epoch, slot, indices = task
            if init_error is not None:
                conn.send((gen, seq, slot, "error", init_error))
                continue
            try:
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(epoch)
                items = [dataset[i] for i in indices]
                layout, nbytes = batch_layout(items)
                fd, size = None, None
                if slots[slot] is None or len(slots[slot]) < nbytes:
                    size = max(mmap.PAGESIZE, nbytes)
                    fd = _shared_file(size)
                    if slots[slot] is not None:
                        slots[slot].close()
                    slots[slot] = mmap.mmap(fd, size)
                stack_into(items, layout, slots[slot])
                del items
                conn.send((gen, seq, slot, "ok", (size, layout)))
                if fd is not None:
                    send_handle(conn, fd, os.getppid())
                    os.close(fd)
            except Exception as e:  # noqa: BLE001 - passed to the main process
                conn.send((gen, seq, slot, "error", _pack_error(e)))
    finally:
        for m in slots:
            if m is not None:
                m.close()


class single_threaded_opencv:
    """Within: OpenCV set to one thread, so that processes forked meanwhile start with it. The
    workers keep the cores busy already, and OpenCV's threads per worker only contend (2x
    slower loading with 2 workers on 2 cores); a forked child cannot change it itself: its
    copy of OpenCV's thread pool has no threads, and setNumThreads there waits on them forever."""

    def __enter__(self):
        try:
            import cv2
        except ImportError:
            self.cv2 = None
            return self
        self.cv2, self.threads = cv2, cv2.getNumThreads()
        cv2.setNumThreads(1)
        return self

    def __exit__(self, *exc):
        if self.cv2 is not None:
            self.cv2.setNumThreads(self.threads)


class _Slot:
    """The main process's mapping of one worker slot."""

    def __init__(self):
        self.map = None

    def attach(self, conn, size):
        from multiprocessing.reduction import recv_handle
        fd = recv_handle(conn)
        try:
            self.close()
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def arrays(self, layout):
        return [np.ndarray(shape, np.dtype(dtype), buffer=self.map, offset=offset)
                for offset, shape, dtype in layout]

    def close(self):
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:      # an array still views it: the mapping goes with the array
                pass
            self.map = None


class _WorkerPool:
    def __init__(self, dataset, num_workers, prefetch, init_fn):
        import multiprocessing
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs = [], []
        self.slots = [[_Slot() for _ in range(prefetch)] for _ in range(num_workers)]
        self.free = collections.deque((w, k) for k in range(prefetch) for w in range(num_workers))
        self.busy = {}
        self.gen = 0
        try:
            with single_threaded_opencv():
                self._start(ctx, dataset, num_workers, prefetch, init_fn)
        except BaseException:
            self.close()
            raise

    def _start(self, ctx, dataset, num_workers, prefetch, init_fn):
        for w in range(num_workers):
            ours, theirs = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_worker_loop, args=(dataset, theirs, w, init_fn, prefetch),
                            daemon=True, name=f"ppcls-loader-{w}")
            p.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(p)

    def run(self, batches, epoch, to_batch):
        """One pass over ``batches`` (lists of indices), in order; yields to_batch(arrays)."""
        self.gen += 1
        gen, sent, done, pending, exhausted = self.gen, 0, 0, {}, False
        while True:
            if gen != self.gen:
                raise SupersededPass("this pass over the loader was left for a newer one (a new "
                                     "iter() of the same loader); it cannot be resumed")
            while not exhausted and self.free:
                try:
                    indices = next(batches)
                except StopIteration:
                    exhausted = True
                    break
                w, k = self.free.popleft()
                try:
                    self.conns[w].send((gen, sent, epoch, k, [int(i) for i in indices]))
                except OSError:
                    self.procs[w].join(timeout=5)
                    self._died(w)
                self.busy[(w, k)] = gen
                sent += 1
            if done == sent and exhausted:
                return
            if done == sent or done not in pending:     # wait (slots held by a left pass too)
                self._receive(gen, pending)
                continue
            w, k, layout = pending.pop(done)
            batch = to_batch(self.slots[w][k].arrays(layout))      # copies out of the slot
            self._release(w, k)
            done += 1
            yield batch

    def _release(self, w, k):
        del self.busy[(w, k)]
        self.free.append((w, k))

    def _receive(self, gen, pending):
        from multiprocessing.connection import wait
        busy_workers = {w for w, _ in self.busy}
        ready = wait([self.conns[w] for w in busy_workers]
                     + [self.procs[w].sentinel for w in busy_workers])
        for w in busy_workers:
            conn = self.conns[w]
            while conn in ready and conn.poll():
                try:
                    r_gen, seq, k, status, payload = conn.recv()
                except (EOFError, OSError):
                    break
                if status == "ok" and payload[0] is not None:
                    self.slots[w][k].attach(conn, payload[0])
                if r_gen != gen:                     # a batch of a pass the consumer left
                    self._release(w, k)
                    continue
                if status == "error":
                    self._raise(w, payload)
                pending[seq] = (w, k, payload[1])
        for w in busy_workers:
            if self.procs[w].sentinel in ready and not self.procs[w].is_alive():
                self._died(w)

    def _raise(self, w, payload):
        blob, summary, tb = payload
        cause = _WorkerTraceback(f"in loader worker {w}:\n{tb}")
        if blob is not None:
            raise pickle.loads(blob) from cause
        raise LoaderWorkerError(f"loader worker {w} failed: {summary}") from cause

    def _died(self, w):
        code = self.procs[w].exitcode
        how = (f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with code {code}")
        hint = ""
        if code == -signal.SIGBUS:
            hint = "; out of shared memory? lower batch_size or num_workers"
        elif code == -signal.SIGKILL:
            hint = "; out of memory? lower num_workers or batch_size"
        raise LoaderWorkerError(f"loader worker {w} (pid {self.procs[w].pid}) {how}{hint}")

    def close(self):
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for conn in self.conns:
            conn.close()
        for row in self.slots:
            for s in row:
                s.close()
        self.conns, self.procs = [], []


class Loader:
    """Batches of ``dataset[i]`` for the index lists of ``batch_sampler``, made by
    ``num_workers`` persistent worker processes (0: in this process) and turned into what
    the consumer gets by ``to_batch`` (a list of stacked NumPy arrays -> a batch; it must copy
    them: the arrays live in a slot that is reused). Sized and iterable like paddle's
    DataLoader; each ``iter()`` is one pass (epoch). ``close()`` ends the workers (also done
    when the loader is garbage collected or the process exits)."""

    def __init__(self, dataset, batch_sampler, num_workers, to_batch, worker_init_fn=None,
                 prefetch=2):
        if num_workers > 0 and not fork_available():
            raise ValueError("loader workers need the 'fork' start method (Linux, macOS)")
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.num_workers, self.prefetch = num_workers, prefetch
        self.to_batch, self.worker_init_fn = to_batch, worker_init_fn
        self._pool = None
        self._finalizer = None

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        epoch = getattr(self.dataset, "epoch", 0)
        if self.num_workers == 0:
            return self._in_process()
        if self._pool is None:
            self._pool = _WorkerPool(self.dataset, self.num_workers, self.prefetch,
                                     self.worker_init_fn)
            self._finalizer = weakref.finalize(self, self._pool.close)
        return self._guarded(self._pool.run(iter(self.batch_sampler), epoch, self.to_batch))

    def _guarded(self, batches):
        try:
            yield from batches
        except BaseException as e:
            if not isinstance(e, (GeneratorExit, SupersededPass)):   # a failed pass: the
                self.close()                                          # workers go with it
            raise

    def _in_process(self):
        for indices in self.batch_sampler:
            yield self.to_batch(stack_items([self.dataset[int(i)] for i in indices]))

    def close(self):
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._pool = None

    @property
    def worker_pids(self):
        return [p.pid for p in self._pool.procs] if self._pool is not None else []


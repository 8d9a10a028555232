"""The ranks of a distributed run meeting without a collective timing out, and rank 0 sending
bytes to the others.

Why: on CPU, Paddle's gloo process group aborts any collective that waits longer than gloo's
default 30 s (``gloo/transport/tcp/pair.cc ... TIMEOUT``); Paddle 3.3 creates it without a
timeout option (``ProcessGroupGloo.create(store, rank, world_size, gid)``; ``PADDLE_PG_TIMEOUT``
reaches NCCL only). So while rank 0 saves a 180 MB checkpoint to a slow disk, the others, already
in the next step's gradient all-reduce, die. ``wait_for_all`` is a barrier that is not a
collective: every rank counts itself in on Paddle's TCP store (the rendezvous server that
``init_parallel_env`` starts in rank 0's process, address ``PADDLE_MASTER``) through a
connection of its own, and polls the count, which never times out. The ranks then enter the
next collective together. Called after rank-0-only work (saves, recovery, the resume decision)
and before gathering evaluation results.

A poll never times out, so a rank that died must be noticed another way: every rank bumps a
heartbeat counter on the store every 2 s from a thread (own connection again: a store client is
not thread-safe); a waiting rank that sees no heartbeat from a missing rank for 120 s stops with
an error naming it (a rank busy in a long C++ call may starve its heartbeat thread for a while).
A rank that came to the meeting and died there, while rank 0 was still saving, is named by rank
0 within 10 s of its arrival (it waits for every rank to confirm the meeting, which it must
anyway: it hosts the store). If rank 0 dies, its store goes with it and the waiting ranks' polls
fail. A rank that is alive but never arrives (hung) is given up on after an hour.
Without ``PADDLE_MASTER`` (another launcher) it falls back to ``paddle.distributed.barrier``.
"""
import atexit
import hashlib
import os
import socket
import threading
import time

import numpy as np

from ..utils.logger import get_logger
from .errors import TrainingError

HEARTBEAT_S = 2.0          # how often every rank says it is alive
DEAD_AFTER_S = 120.0       # no heartbeat for this long: the rank is gone
REPORT_EVERY_S = 60.0      # log who is awaited this often
MAX_WAIT_S = 3600.0        # a rank alive but not arriving for this long: hung
CONFIRM_DEAD_S = 10.0      # a rank that met but does not confirm, heartbeat silent: dead
CHUNK_BYTES = 64 << 20     # broadcast_bytes sends this much per collective

_waiter = None


def _store_client(host, port):
    from paddle.base import core
    # not the master, expects no workers: connects and returns (num_workers=0 skips the
    # start-up count); the timeout bounds blocking gets, which are not used here
    return core.TCPStore(host, port, False, 0, 900)


class StoreWaiter:
    def __init__(self, rank, world_size, host, port):
        self.rank, self.world_size = rank, world_size
        self.host, self.port = host, port
        self.client = _store_client(host, port)
        self.count = 0
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, args=(_store_client(host, port),),
                                      name="ppcls-heartbeat", daemon=True)
        self._beat.start()
        atexit.register(self.close)

    def _heartbeat(self, client):
        key = f"ppcls/alive/{self.rank}"
        try:
            while True:
                client.add(key, 1)
                if self._stop.wait(HEARTBEAT_S):
                    return
        except Exception:  # noqa: BLE001 - the store went away (rank 0 ended): nothing to tell
            return

    def close(self):
        self._stop.set()
        self._beat.join(timeout=HEARTBEAT_S + 1)

    def _add(self, key, value, what):
        try:
            return self.client.add(key, value)
        except Exception as e:  # noqa: BLE001 - socket errors come back as RuntimeError
            raise TrainingError(
                f"lost rank 0 (it hosts the rendezvous store at {self.host}:{self.port}) while "
                f"rank {self.rank} waited for {what} ({str(e).splitlines()[0][:120]}); "
                f"see rank 0's log") from None

    def _gather(self, key, what, dead_after, limit, hung_is_error):
        """Count this rank in at ``key`` and poll until every rank is in. A missing rank whose
        heartbeat stands still for ``dead_after`` s is named in an error; after ``limit`` s
        missing ranks that are alive are an error too (``hung_is_error``) or given up on."""
        self._add(f"{key}/{self.rank}", 1, what)
        arrived = self._add(key, 1, what)
        start = last_check = last_report = time.time()
        delay, beats = 0.002, {}
        while arrived < self.world_size:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
            arrived = self._add(key, 0, what)
            now = time.time()
            if arrived >= self.world_size or now - last_check < HEARTBEAT_S:
                continue
            last_check = now
            missing = [r for r in range(self.world_size) if not self._add(f"{key}/{r}", 0, what)]
            for r in missing:
                seen = self._add(f"ppcls/alive/{r}", 0, what)
                if r not in beats or beats[r][0] != seen:
                    beats[r] = (seen, now)
                elif now - beats[r][1] > dead_after:
                    raise TrainingError(
                        f"rank {r} stopped responding (no heartbeat for {dead_after:.0f} s) while "
                        f"rank {self.rank} waited for {what}; see rank {r}'s log")
            if now - start > limit:
                if not hung_is_error:
                    break
                raise TrainingError(
                    f"rank(s) {', '.join(map(str, missing))} did not finish {what} within "
                    f"{limit:.0f} s, though alive (heartbeats go on): hung? See their logs")
            if now - last_report >= REPORT_EVERY_S:
                last_report = now
                get_logger().info(f"waiting {now - start:.0f} s for rank(s) "
                                  f"{', '.join(map(str, missing))} to finish {what}")
        return time.time() - start

    def wait(self, what):
        """Block until every rank has called ``wait`` as often as this one; returns seconds."""
        self.count += 1
        key = f"ppcls/wait/{self.count}"
        waited = self._gather(key, what, DEAD_AFTER_S, MAX_WAIT_S, hung_is_error=True)
        # Rank 0 hosts the store: had it gone on (and ended the run) while a rank still polled,
        # that rank would find the store gone. So every rank confirms it saw the meeting
        # complete, and rank 0 waits for the confirmations. A rank that saw it is polling in
        # Python, its heartbeat thread runs: silent for CONFIRM_DEAD_S, it died (e.g. killed
        # while it waited for rank 0's save), and is named now rather than at the next collective.
        if self.rank == 0:
            self._gather(f"{key}/seen", what, CONFIRM_DEAD_S, 60.0, hung_is_error=False)
        else:
            self._add(f"{key}/seen/{self.rank}", 1, what)
            self._add(f"{key}/seen", 1, what)
        return waited


def start(rank, world_size):
    """Start this process's waiter (heartbeat included); called once by init_env."""
    global _waiter
    if world_size <= 1 or _waiter is not None:
        return _waiter
    master = os.environ.get("PADDLE_MASTER", "")
    host, _, port = master.rpartition(":")
    if host and port.isdigit():
        try:
            _waiter = StoreWaiter(rank, world_size, host, int(port))
        except Exception as e:  # noqa: BLE001 - e.g. a launcher whose PADDLE_MASTER is no store
            get_logger().warning(f"cannot reach the rendezvous store at {master} ({e}); ranks "
                                 f"wait for each other in gloo barriers (30 s limit on CPU)")
    return _waiter


def wait_for_all(what, world_size=None):
    """Every rank meets here; no collective, so any rank may arrive minutes late. ``what``
    names the work awaited, for the log. Returns the seconds this rank waited."""
    import paddle.distributed as dist
    if world_size is None:
        world_size = dist.get_world_size() if dist.is_initialized() else 1
    if world_size <= 1:
        return 0.0
    if _waiter is not None:
        return _waiter.wait(what)
    t0 = time.time()
    dist.barrier()
    return time.time() - t0


def broadcast_object(obj, src=0):
    """``obj`` of rank ``src`` on every rank (a small picklable object)."""
    import paddle.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj):
    import paddle.distributed as dist
    out = []
    dist.all_gather_object(out, obj)
    return out


def broadcast_file(size, rank, src_path=None, dst_path=None, src=0):
    """Rank ``src``'s file ``src_path`` (``size`` bytes) written to ``dst_path`` on every rank
    that gives one; the others take part and discard it. Sent in 64 MB uint8 tensors (a
    collective each, read from and written to disk chunk by chunk: well inside gloo's 30 s on
    any network, and no more memory than a chunk). Returns the SHA-256 (hex) of what this rank
    wrote (None if nothing)."""
    import paddle
    import paddle.distributed as dist
    digest = hashlib.sha256()
    fin = open(src_path, "rb") if rank == src else None
    fout = open(dst_path, "wb") if dst_path and rank != src else None
    try:
        for offset in range(0, size, CHUNK_BYTES):
            n = min(CHUNK_BYTES, size - offset)
            if fin is not None:
                data = fin.read(n)
                if len(data) != n:
                    raise TrainingError(f"{src_path} changed while being sent ({size} bytes "
                                        f"announced, {offset + len(data)} read)")
                chunk = paddle.to_tensor(np.frombuffer(data, np.uint8))
            else:
                chunk = paddle.zeros([n], dtype="uint8")
            dist.broadcast(chunk, src=src)
            if fout is not None:
                data = chunk.numpy().tobytes()
                fout.write(data)
                digest.update(data)
    finally:
        for f in (fin, fout):
            if f is not None:
                f.close()
    return digest.hexdigest() if fout is not None else None


def host_name():
    """This node's name for messages: the hostname, else the endpoint's address."""
    name = socket.gethostname()
    return name or os.environ.get("PADDLE_CURRENT_ENDPOINT", "?").split(":")[0]

"""Resume that every rank agrees on, whether or not the nodes share a disk.

Rank 0 decides what to resume (``checkpoints``, or with ``resume: auto`` the newest complete
checkpoint that loads in *its* ``model_save_dir``, the only one written to) and tells the
others, with the size and SHA-256 of each of the checkpoint's files. A rank whose disk holds
the very same files (a shared disk) reads them; a rank that lacks them, or holds other bytes
under that name (a stale run on a node's local disk), receives them from rank 0 over the process
group into a temporary folder that is removed once loaded. Then every rank hashes what it
loaded (weights, optimizer state, EMA, epoch, step, lr) and the ranks compare: a difference
stops the run at start on every rank. Sending was chosen over stopping: the bytes are checked
end to end, a DLA60 Momentum checkpoint (~180 MB) crosses in 64 MB collectives in seconds, and
nodes without a shared disk (only rank 0's node has checkpoints) then resume with no copying
by hand.
"""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from ..utils import checkpoint as ckpt
from . import peers
from .errors import TrainingError


def checkpoint_files(prefix):
    """File names of the checkpoint ``.../<name>/ppcls``: ``ppcls.*`` and ``ppcls_*`` (EMA and
    other extra weights)."""
    folder, base = os.path.split(prefix)
    if not os.path.isdir(folder or "."):
        return []
    return sorted(n for n in os.listdir(folder or ".")
                  if (n.startswith(base + ".") or n.startswith(base + "_"))
                  and os.path.isfile(os.path.join(folder, n)))


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def describe(prefix):
    """{file name: [size, sha256]} of a checkpoint's files."""
    folder = os.path.dirname(prefix)
    return {n: [os.path.getsize(os.path.join(folder, n)), file_sha256(os.path.join(folder, n))]
            for n in checkpoint_files(prefix)}


def has_identical_copy(prefix, files):
    """Whether this process reads exactly rank 0's files under ``prefix``."""
    try:
        if set(checkpoint_files(prefix)) != set(files):
            return False
        folder = os.path.dirname(prefix)
        return all(os.path.getsize(os.path.join(folder, n)) == size
                   and file_sha256(os.path.join(folder, n)) == digest
                   for n, (size, digest) in files.items())
    except OSError:
        return False


def _choose(cfg, arch_dir):
    """(prefix, loaded checkpoint) rank 0 resumes from, or (None, None)."""
    if cfg["checkpoints"]:
        prefix = ckpt.strip_suffix(cfg["checkpoints"])
        return prefix, ckpt.load_checkpoint(prefix)
    if cfg["resume"] == "auto":
        return ckpt.load_latest_checkpoint(arch_dir)
    return None, None


def decide(cfg, arch_dir, env):
    """Rank 0's choice on every rank: ({'prefix', 'files'}, what rank 0 loaded or None). A
    checkpoint rank 0 cannot read stops every rank with rank 0's message."""
    plan, loaded = None, None
    if env.rank == 0:
        try:
            prefix, loaded = _choose(cfg, arch_dir)
            plan = {"prefix": prefix, "files": describe(prefix) if prefix else {}}
        except (ckpt.CheckpointError, OSError) as e:
            plan = {"error": str(e)}
    if env.world_size > 1:
        peers.wait_for_all("choosing the checkpoint to resume", env.world_size)
        plan = peers.broadcast_object(plan)
    if "error" in plan:
        raise ckpt.CheckpointError(plan["error"] + (" (read by rank 0, which sends the resumed "
                                                    "state to the other ranks)"
                                                    if env.world_size > 1 else ""))
    return plan, loaded


@contextlib.contextmanager
def local_copy(plan, env, logger):
    """Yield (prefix this rank loads from, note for the log): its own disk's copy when identical
    to rank 0's, else a temporary copy received from rank 0."""
    prefix, files = plan["prefix"], plan["files"]
    if env.world_size <= 1:
        yield prefix, ""
        return
    have = env.rank == 0 or has_identical_copy(prefix, files)
    peers.wait_for_all("comparing checkpoint copies", env.world_size)   # hashing takes a while
    ranks = peers.all_gather_object({"rank": env.rank, "have": have, "host": peers.host_name(),
                                     "cwd": os.getcwd()})
    need = [r for r in ranks if not r["have"]]
    if not need:
        yield prefix, ""
        return
    if env.rank == 0:
        total = sum(size for size, _ in files.values())
        logger.info(f"resume: rank(s) {', '.join(str(r['rank']) for r in need)} (on "
                    f"{', '.join(sorted({r['host'] + ':' + r['cwd'] for r in need}))}) have no "
                    f"identical copy of {prefix}; sending it from rank 0 ({len(files)} files, "
                    f"{total / 1e6:.1f} MB)")
    tmp = None if have else tempfile.mkdtemp(prefix="ppcls-resume-")
    try:
        folder = os.path.dirname(prefix)
        for name, (size, digest) in sorted(files.items()):
            peers.wait_for_all(f"sending {name}", env.world_size)
            got = peers.broadcast_file(size, env.rank, src_path=os.path.join(folder, name),
                                       dst_path=os.path.join(tmp, name) if tmp else None)
            if tmp is not None and got != digest:
                raise TrainingError(f"resume: {name} of {prefix} arrived damaged from rank 0")
        if tmp is None:
            yield prefix, ""
        else:
            yield os.path.join(tmp, os.path.basename(prefix)), " (received from rank 0)"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _feed(h, obj):
    """Hash nested dicts/lists of tensors, arrays and scalars in a fixed order."""
    if isinstance(obj, dict):
        for key in sorted(obj, key=str):
            h.update(str(key).encode())
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _feed(h, item)
    elif hasattr(obj, "numpy"):
        _feed(h, obj.numpy())
    elif isinstance(obj, np.ndarray):
        h.update(str(obj.dtype).encode() + str(obj.shape).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    else:
        h.update(repr(obj).encode())


def state_digest(model, opt_state, ema, numbers):
    """SHA-256 (hex) of the resumed state: weights, optimizer state as loaded, EMA weights and
    the schedule ``numbers`` (epoch, step, lr, best)."""
    h = hashlib.sha256()
    _feed(h, model.state_dict())
    _feed(h, opt_state or {})
    if ema is not None:
        _feed(h, ema.state_dict())
    h.update(json.dumps(numbers, sort_keys=True).encode())
    return h.hexdigest()


def check_agreement(digest, env, prefix):
    """Stop every rank when the ranks resumed different states."""
    if env.world_size <= 1:
        return
    peers.wait_for_all("loading the checkpoint", env.world_size)
    digests = peers.all_gather_object(digest)
    if len(set(digests)) > 1:
        listed = ", ".join(f"rank {r}: {d[:12]}" for r, d in enumerate(digests))
        raise TrainingError(f"the ranks resumed different states from {prefix} ({listed}); "
                            f"no rank trains from a state the others do not share")

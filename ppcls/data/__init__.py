"""Data: datasets, per-sample transforms, batch mixing and the loader."""
import functools
import os
import signal
import sys

import numpy as np
import paddle

from .dataset import ClassificationDataset, DatasetError, class_names, read_label_list  # noqa: F401
from .loader import Loader, LoaderWorkerError, fork_available  # noqa: F401
from .tensors import to_tensors
from .mix import BatchMixer  # noqa: F401
from .transforms import check_pipeline


class EpochBatchSampler(paddle.io.BatchSampler):
    """Shards a dataset over ``world_size`` ranks; shuffles with ``seed + epoch`` when training.

    Evaluation pads the index list (repeating its start) so that every rank runs the same
    number of batches; the evaluator drops the repeats by sample index, so the metrics are
    exactly those of the whole set whatever the number of workers.
    """

    def __init__(self, num_samples, batch_size, rank=0, world_size=1, shuffle=False,
                 drop_last=False, seed=0):
        self.num_samples, self.batch_size = num_samples, batch_size
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _indices(self):
        idx = np.arange(self.num_samples)
        if self.shuffle:
            idx = np.random.RandomState(self.seed + self.epoch).permutation(self.num_samples)
        per_rank = -(-self.num_samples // self.world_size)
        pad = per_rank * self.world_size - self.num_samples
        if pad:
            idx = np.concatenate([idx, idx[:pad]])
        return idx[self.rank::self.world_size]

    def __iter__(self):
        idx = self._indices()
        for start in range(0, len(idx), self.batch_size):
            batch = idx[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch.tolist()

    def __len__(self):
        n = -(-self.num_samples // self.world_size)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class NormalizedBatches:
    """A DataLoader whose batches get their first field (the uint8 images) normalised once per
    batch, on the batch's device (see transforms.BatchNormalize). Iterable and sized like the
    loader it wraps."""

    def __init__(self, loader, normalize):
        self.loader, self.normalize = loader, normalize

    def __iter__(self):
        for batch in self.loader:
            yield [self.normalize(batch[0]), *batch[1:]]

    def __len__(self):
        return len(self.loader)


def per_device_batch(global_batch, world_size, section):
    if global_batch < world_size:
        raise DatasetError(f"{section}.batch_size={global_batch} is smaller than the number of "
                           f"workers ({world_size}); batch_size is the global batch")
    if global_batch % world_size:
        raise DatasetError(f"{section}.batch_size={global_batch} is not divisible by the "
                           f"{world_size} workers; batch_size is the global batch")
    return global_batch // world_size


def _init_worker(trainer_pid, worker_id):
    """A loader worker ends with the trainer. (It runs OpenCV on one thread: the Loader forks
    it with OpenCV set so, see loader.single_threaded_opencv.)"""
    _end_with_trainer(trainer_pid)


def _end_with_trainer(trainer_pid):
    """Loader workers get SIGKILL when the trainer dies. After a kill (OOM killer, preemption,
    a distributed peer's failure) they would otherwise linger, blocked on a queue that nobody
    reads, holding memory. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != trainer_pid:                                     # died before prctl
        os._exit(0)


def build_dataloader(section_cfg, section, classes_num, train, seed=0, rank=0, world_size=1,
                     places=None, max_missing=0):
    """(loader, dataset, sampler) for one TRAIN/VALID section of a recipe; the loader yields
    ``[images float32 NCHW, labels, index, bad_skipped]`` with the images normalised per batch when
    the pipeline allows it (NormalizedBatches). ``max_missing``
    (max_bad_images) listed files may be missing: left out and counted as bad images."""
    try:
        check_pipeline(section_cfg["transforms"], section)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    dataset = ClassificationDataset(section_cfg["data_dir"], section_cfg["file_list"],
                                    section_cfg["transforms"], classes_num, seed=seed,
                                    max_missing=max_missing, batch_normalize=True)
    batch = per_device_batch(section_cfg["batch_size"], world_size, section)
    if train and len(dataset) < section_cfg["batch_size"]:
        raise DatasetError(f"{section}: {len(dataset)} images but a global batch of "
                           f"{section_cfg['batch_size']}; lower {section}.batch_size")
    sampler = EpochBatchSampler(len(dataset), batch, rank, world_size, shuffle=train,
                                drop_last=train, seed=section_cfg["shuffle_seed"])
    return make_loader(dataset, sampler, section_cfg["num_workers"], places), dataset, sampler


def make_loader(dataset, batch_sampler, num_workers, places=None):
    """The loader of ``dataset`` (a ClassificationDataset) as training and evaluation use it:
    ppcls.data.loader.Loader (persistent workers, shared-memory slots), batches of tensors with
    the images normalised once per batch when the dataset defers it. Where processes cannot be
    forked (Windows), paddle's DataLoader with the same batches."""
    place = places[0] if isinstance(places, (list, tuple)) else places
    init = functools.partial(_init_worker, os.getpid())
    if num_workers == 0 or fork_available():
        return Loader(dataset, batch_sampler, num_workers,
                      functools.partial(to_tensors, dataset.batch_normalize, place),
                      worker_init_fn=init)
    loader = paddle.io.DataLoader(dataset, batch_sampler=batch_sampler, places=places,
                                  num_workers=num_workers, use_shared_memory=True,
                                  worker_init_fn=init, return_list=True)
    if dataset.batch_normalize is not None:
        loader = NormalizedBatches(loader, dataset.batch_normalize)
    return loader

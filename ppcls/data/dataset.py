"""Classification datasets: a file list (``relative/path label`` per line) under ``data_dir``,
or the ImageFolder layout (one sub-folder per class, sorted) when no file list is given.

Everything that can be checked before training is checked at construction, with line numbers:
a missing file, a label outside ``[0, classes_num)``, a malformed line. An image that fails to
decode at run time is reported once with its path and replaced by the next sample; each item
carries how many bad images it skipped so the trainer can count them and stop past a limit.
Listed files that do not exist are left out and counted as bad images when a limit allows
them (``max_missing``); otherwise they fail at construction, with their line numbers.
"""
import logging
import os
import random
import zlib

import numpy as np
import paddle

from ..utils.errors import UserError
from .loader import worker_id
from .transforms import BadImageError, apply_transforms, build_transforms, split_batch_normalize

logger = logging.getLogger("ppcls")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DatasetError(UserError, ValueError):
    """A dataset problem found before training; the message lists file and line numbers."""


def bad_image_limit(max_bad_images, num_samples):
    """``max_bad_images`` below 1 is a fraction of the samples, else a count."""
    return int(max_bad_images * num_samples) if max_bad_images < 1 else int(max_bad_images)


def parse_file_list(file_list, data_dir, classes_num=None, check_files=True, max_report=20,
                    missing=None):
    """Read ``path label`` lines -> [(abs path, label)]; all problems reported in one error.

    With a list as ``missing``, files not found are appended to it as (line number, path)
    instead of being problems."""
    if not os.path.isfile(file_list):
        raise DatasetError(f"file list not found: {file_list} (set TRAIN/VALID.file_list, or leave "
                           f"it empty to read {data_dir} as class sub-folders)")
    if not os.path.isdir(data_dir):
        raise DatasetError(f"data_dir not found: {data_dir}")
    samples, problems = [], []
    with open(file_list, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            parts = text.split()
            if len(parts) < 2:
                problems.append(f"line {lineno}: expected 'relative/path label', got {text!r}")
                continue
            rel, label = " ".join(parts[:-1]), parts[-1]
            try:
                label = int(label)
            except ValueError:
                problems.append(f"line {lineno}: label {label!r} is not an integer")
                continue
            if classes_num is not None and not 0 <= label < classes_num:
                problems.append(f"line {lineno}: label {label} outside [0, {classes_num}) "
                                f"(classes_num is {classes_num})")
                continue
            path = os.path.join(data_dir, rel)
            if check_files and not os.path.isfile(path):
                if missing is not None:
                    missing.append((lineno, path))
                else:
                    problems.append(f"line {lineno}: file not found: {path}")
                continue
            samples.append((path, label))
    if problems:
        shown = "\n  ".join(problems[:max_report])
        more = f"\n  ... and {len(problems) - max_report} more" if len(problems) > max_report else ""
        raise DatasetError(f"{file_list}: {len(problems)} problem(s):\n  {shown}{more}")
    if not samples:
        raise DatasetError(f"{file_list}: no samples listed")
    return samples


def scan_image_folder(data_dir, classes_num=None):
    """ImageFolder layout -> ([(path, label)], [class names]); classes are sorted sub-folders."""
    if not os.path.isdir(data_dir):
        raise DatasetError(f"data_dir not found: {data_dir}")
    classes = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    if not classes:
        raise DatasetError(f"{data_dir}: no file_list given and no class sub-folders found")
    if classes_num is not None and len(classes) != classes_num:
        raise DatasetError(f"{data_dir}: {len(classes)} class sub-folders but classes_num is "
                           f"{classes_num}; set classes_num: {len(classes)}")
    samples = []
    for label, name in enumerate(classes):
        root = os.path.join(data_dir, name)
        for dirpath, _, files in sorted(os.walk(root)):
            for fname in sorted(files):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    samples.append((os.path.join(dirpath, fname), label))
    if not samples:
        raise DatasetError(f"{data_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders")
    return samples, classes


def read_label_list(path):
    """``id name`` per line (or one name per line) -> {id: name}."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            text = line.strip()
            if not text:
                continue
            parts = text.split(maxsplit=1)
            if len(parts) == 2 and parts[0].isdigit():
                names[int(parts[0])] = parts[1]
            else:
                names[i] = text
    return names


def class_names(section_cfg, dataset):
    """{id: name} from ``label_list`` (``id name`` per line), else the ImageFolder sub-folder
    names, else None."""
    path = section_cfg.get("label_list")
    if path:
        if os.path.isfile(path):
            return read_label_list(path)
        logger.warning(f"label_list {path} not found: class names are not shown "
                       f"(write it with tools/make_lists.py, `id name` per line)")
    names = getattr(dataset, "class_names", None)
    return dict(enumerate(names)) if names else None


class ClassificationDataset(paddle.io.Dataset):
    """Items are ``(image, label, index, bad_skipped)``.

    ``batch_normalize=True`` leaves a trailing NormalizeImage + ToCHWImage out of the per-sample
    transforms (items are then uint8 CHW images) and keeps it as ``self.batch_normalize``, to be
    applied to each batch (ppcls.data.build_dataloader does); None when the pipeline has another
    shape, in which case items are normalised per sample as before."""

    def __init__(self, data_dir, file_list="", transforms=(), classes_num=None, seed=0,
                 check_files=True, max_missing=0, batch_normalize=False):
        super().__init__()
        self.data_dir = data_dir
        self.missing, self._reported = [], set()
        if file_list:
            missing = [] if max_missing else None
            self.samples = parse_file_list(file_list, data_dir, classes_num, check_files,
                                           missing=missing)
            self._check_missing(file_list, missing or [], max_missing)
            self.class_names = None
        else:
            self.samples, self.class_names = scan_image_folder(data_dir, classes_num)
        self.ops = build_transforms(list(transforms))
        self.batch_normalize = None
        if batch_normalize:
            self.ops, self.batch_normalize = split_batch_normalize(self.ops)
        self.seed = seed
        self.epoch = 0

    def _check_missing(self, file_list, missing, max_missing):
        if not missing:
            return
        limit = bad_image_limit(max_missing, len(self.samples) + len(missing))
        lines = [f"line {n}: file not found: {p}" for n, p in missing]
        shown = "\n  ".join(lines[:20]) + (f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else "")
        if len(missing) > limit:
            raise DatasetError(f"{file_list}: {len(missing)} listed file(s) not found, more than "
                               f"max_bad_images allows ({limit}):\n  {shown}")
        logger.warning(f"{file_list}: {len(missing)} listed file(s) not found, left out and "
                       f"counted as bad images:\n  {shown}")
        self.missing = missing
        self._reported.update(p for _, p in missing)

    def __len__(self):
        return len(self.samples)

    def report_bad(self, index, reason=None):
        """Name a bad sample in the log, once per run; returns True the first time. The trainer
        calls it for the bad samples its batches report, because the loader's worker processes
        do not share what they have reported."""
        path = self.samples[index][0]
        if path in self._reported:
            return False
        self._reported.add(path)
        if reason is None:
            from .dataset_check import diagnose
            reason = diagnose(path) or "failed to load"
        logger.warning(f"bad image skipped (replaced by the next sample): {path}: {reason}")
        return True

    def set_epoch(self, epoch):
        self.epoch = epoch
        for op in self.ops:             # epoch-dependent operators: GridMask's probability ramp
            if hasattr(op, "set_epoch"):
                op.set_epoch(epoch)

    def _reseed(self, index):
        # Augmentation randomness per (seed, epoch, sample): independent of workers and order.
        s = zlib.crc32(f"{self.seed}/{self.epoch}/{index}".encode())
        random.seed(s)
        np.random.seed(s)

    def load(self, index):
        path, label = self.samples[index]
        with open(path, "rb") as f:
            data = f.read()
        self._reseed(index)
        return apply_transforms(self.ops, data), label

    def __getitem__(self, index):
        skipped = 0
        for attempt in range(min(len(self.samples), 50)):
            i = (index + attempt) % len(self.samples)
            try:
                img, label = self.load(i)
                return img, np.int64(label), np.int64(index), np.int64(skipped)
            except (BadImageError, OSError) as e:
                skipped += 1
                if paddle.io.get_worker_info() is None and worker_id() is None:
                    self.report_bad(i, str(e))          # in a worker: the trainer reports it
        raise DatasetError(f"{self.data_dir}: 50 consecutive images failed to load near index "
                           f"{index}; check the dataset with tools/check_dataset.py")

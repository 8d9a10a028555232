"""Input-pipeline speed (``tools/benchmark.py --mode data``): images/s per core of a recipe's
TRAIN and VALID per-sample pipelines, the decode-only ceiling (``cv2.imdecode`` of the same
files, from memory), and the training DataLoader with 1..cores worker processes.

Per-sample cases run in this process on one core (OpenCV's own threads set to 1, as in loader
workers): ``dataset[i]`` exactly as a worker calls it (file read, per-sample reseeding, the
recipe's operators; uint8 out when the normalisation runs per batch). They are interleaved per
image (decode image i, TRAIN item i, VALID item i, then image i+1) and timed in CPU time of this
process, so their ratios hold on a busy machine: a core taken away by another process stops the
clock of whichever case it interrupts. Rates are medians over rounds of ``batch_size`` images.

A DataLoader case is the loader training iterates (ppcls.data.make_loader: worker processes,
collation into shared memory, the per-batch normalisation in this process) over an endless
sampler, timed in wall-clock time -- its speed is what the machine delivers, so it needs the
cores free: the load average is printed with the figures. Each round first takes the batches
its workers prefetched while the other cases ran, then one untimed batch per worker (the workers
are then in their steady state), then times ``2 x workers`` batches; the CPU time all its
processes spent on them is measured too (Linux), which gives the images per CPU-second: the
loader's own efficiency whatever the load.
"""
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from ...data.dataset import IMAGE_EXTENSIONS
from .cases import BenchmarkError

DEFAULT_DATA = os.path.join("dataset", "photos")
PHOTOS_HINT = ("write it with `python tools/prepare_demo_data.py --photos 512 --out dataset/photos` "
               "or give --data DIR (a folder of images)")
# Targets of issue 18, as (case, reference, minimum share).
TARGETS = (("train", "decode", 0.60), ("valid", "decode", 0.55), ("loader_all", "train_x_cores", 0.75))


def list_images(data_dir):
    """Every image file under ``data_dir`` (recursive, sorted) as paths relative to it."""
    if not os.path.isdir(data_dir):
        raise BenchmarkError(f"--data {data_dir}: no such folder; {PHOTOS_HINT}")
    rel = []
    for dirpath, _, files in sorted(os.walk(data_dir)):
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                rel.append(os.path.relpath(os.path.join(dirpath, name), data_dir))
    if not rel:
        raise BenchmarkError(f"--data {data_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}); "
                             f"{PHOTOS_HINT}")
    return rel


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class DataResult:
    name: str
    label: str
    workers: int = 0            # 0: in this process, one core
    rates: list = field(default_factory=list)     # images/s of each round
    cpu_rates: list = field(default_factory=list)  # images per CPU-second of each round

    @property
    def ips(self):
        return statistics.median(self.rates)

    @property
    def per_core(self):
        return self.ips / max(1, self.workers)

    @property
    def per_cpu_second(self):
        if not self.workers:                    # timed in CPU time already
            return self.ips
        return statistics.median(self.cpu_rates) if self.cpu_rates else None

    def as_dict(self):
        d = {"case": self.name, "label": self.label, "workers": self.workers,
             "rounds": len(self.rates), "ips": round(self.ips, 2),
             "ips_min": round(min(self.rates), 2), "ips_max": round(max(self.rates), 2),
             "per_core": round(self.per_core, 2),
             "clock": "wall" if self.workers else "cpu"}
        if self.per_cpu_second is not None:
            d["per_cpu_second"] = round(self.per_cpu_second, 2)
        return d


class DecodeCase:
    """``cv2.imdecode`` of the files' bytes, read beforehand: the ceiling of any pipeline that
    decodes every pixel."""

    def __init__(self, paths):
        import cv2
        self.cv2 = cv2
        self.blobs = []
        for p in paths:
            with open(p, "rb") as f:
                self.blobs.append(np.frombuffer(f.read(), np.uint8))

    def __call__(self, i):
        if self.cv2.imdecode(self.blobs[i], self.cv2.IMREAD_COLOR) is None:
            raise BenchmarkError(f"cannot decode image number {i} of --data")


class ItemCase:
    """``dataset[i]``, as a loader worker computes an item."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, i):
        self.dataset[i]


class LoaderCase:
    """The training DataLoader with ``workers`` processes over an endless sampler."""

    def __init__(self, dataset, batch_size, workers):
        import paddle
        from ...data import EpochBatchSampler, make_loader
        self.workers, self.batch_size = workers, batch_size
        self.sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=True, drop_last=True)
        self.loader = make_loader(dataset, _Endless(self.sampler), workers)
        self.it = iter(self.loader)
        self.prefetched = 2 * workers          # paddle's prefetch_factor (2) x workers
        self.paddle = paddle

    def _next(self):
        return next(self.it)

    def __call__(self):
        """(images, wall seconds, CPU seconds of this process and the workers or None)."""
        for _ in range(self.prefetched + self.workers):
            self._next()
        n = 2 * self.workers
        cpu0 = self._cpu()
        t = time.perf_counter()
        for _ in range(n):
            self._next()
        dt = time.perf_counter() - t
        cpu1 = self._cpu()
        return n * self.batch_size, dt, (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None

    def _cpu(self):
        pids = getattr(self.loader, "worker_pids", None)
        if pids is None:
            return None
        total = time.process_time()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def close(self):
        self.it = None
        if hasattr(self.loader, "close"):
            self.loader.close()


class _Endless:
    """A batch sampler that starts the next epoch when one ends (set_epoch each time)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        epoch = 0
        while True:
            self.sampler.set_epoch(epoch)
            yield from self.sampler
            epoch += 1

    def __len__(self):
        return 1 << 30


def _dataset(data_dir, list_file, transforms, seed=0):
    from ...data.dataset import ClassificationDataset
    return ClassificationDataset(data_dir, list_file, transforms, seed=seed, batch_normalize=True)


def run_data_cases(cfg, data_dir, batch_size=64, workers=None, warmup=1, rounds=10, log=print):
    """Build the cases of ``cfg`` (a loaded recipe) on the images of ``data_dir``, then time
    ``rounds`` rounds of every case in turn. Returns (results, info)."""
    import cv2
    from ...data.transforms import check_pipeline
    from ...utils.errors import UserError
    cores = usable_cores()
    workers = list(workers) if workers else list(range(1, cores + 1))
    rel = list_images(data_dir)
    if len(rel) < batch_size:
        raise BenchmarkError(f"--data {data_dir}: {len(rel)} images, fewer than one batch of "
                             f"{batch_size}; lower --batch_size or add images")
    for section in ("TRAIN", "VALID"):
        if not cfg.get(section):
            raise BenchmarkError(f"the recipe has no {section} section")
        try:
            check_pipeline(cfg[section]["transforms"], section)
        except ValueError as e:
            raise BenchmarkError(str(e)) from None
    threads_before = cv2.getNumThreads()
    cv2.setNumThreads(1)                # one core, as in a loader worker
    tmp = tempfile.mkdtemp(prefix="ppcls_bench_data_")
    cases, results = [], []
    try:
        list_file = os.path.join(tmp, "all.txt")
        with open(list_file, "w") as f:
            f.write("".join(f"{r} 0\n" for r in rel))
        try:
            train_set = _dataset(data_dir, list_file, cfg["TRAIN"]["transforms"])
            valid_set = _dataset(data_dir, list_file, cfg["VALID"]["transforms"])
        except UserError as e:
            raise BenchmarkError(str(e)) from None
        cases.append((DataResult("decode", "decode only (cv2.imdecode)"),
                      DecodeCase([os.path.join(data_dir, r) for r in rel])))
        cases.append((DataResult("train", "TRAIN per-sample pipeline"), ItemCase(train_set)))
        cases.append((DataResult("valid", "VALID per-sample pipeline"), ItemCase(valid_set)))
        for w in workers:
            loader_set = _dataset(data_dir, list_file, cfg["TRAIN"]["transforms"])
            cases.append((DataResult(f"loader_{w}", f"TRAIN DataLoader, {w} worker"
                                     + ("s" if w > 1 else ""), w),
                          LoaderCase(loader_set, batch_size, w)))
            log(f"  ready: DataLoader with {w} worker(s)")
        order = np.random.RandomState(0).permutation(len(rel))
        pos = 0
        for r in range(warmup + rounds):
            chunk = [int(i) for i in np.take(order, range(pos, pos + batch_size), mode="wrap")]
            pos += batch_size
            spent = [0.0] * len(cases)
            for i in chunk:                     # per-sample cases: interleaved per image
                for c, (result, case) in enumerate(cases):
                    if not isinstance(case, LoaderCase):
                        t = time.process_time()
                        case(i)
                        spent[c] += time.process_time() - t
            for c, (result, case) in enumerate(cases):
                if isinstance(case, LoaderCase):
                    n, dt, cpu = case()
                    if r >= warmup:
                        result.rates.append(n / dt)
                        if cpu:
                            result.cpu_rates.append(n / cpu)
                elif r >= warmup:
                    result.rates.append(len(chunk) / max(spent[c], 1e-9))
            if r == warmup - 1:
                log(f"  warm-up done ({warmup} round(s))")
    finally:
        for _, case in cases:
            if hasattr(case, "close"):
                case.close()
        cv2.setNumThreads(threads_before)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    results = [r for r, _ in cases]
    info = {"images": len(rel), "cores": cores, "workers": workers, "batch_size": batch_size,
            "rounds": rounds, "image_size": _typical_size(os.path.join(data_dir, rel[0]))}
    return results, info


def _typical_size(path):
    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return f"{img.shape[1]}x{img.shape[0]}" if img is not None else "?"


def ratios(results, cores):
    """{name: share}: per-sample cases over decode-only; each DataLoader's images/s over the
    TRAIN per-sample rate x its workers (``NAME_cpu``: its images per CPU-second over the TRAIN
    per-sample rate, the loader's efficiency whatever the load); ``loader_all`` is the loader
    with one worker per core."""
    by = {r.name: r for r in results}
    out = {}
    for name in ("train", "valid"):
        if name in by and "decode" in by:
            out[name] = by[name].ips / by["decode"].ips
    for r in results:
        if r.workers and "train" in by:
            out[r.name] = r.ips / (by["train"].ips * r.workers)
            if r.per_cpu_second:
                out[r.name + "_cpu"] = r.per_cpu_second / by["train"].ips
    if f"loader_{cores}" in out:
        out["loader_all"] = out[f"loader_{cores}"]
    return out


def format_data_table(results, cores):
    rat = ratios(results, cores)
    lines = [f"{'case':<32}{'img/s':>8} {'(min..max)':>13}{'per core':>9}{'per CPU-s':>10}  share"]
    for r in results:
        if r.name == "decode":
            share = "1.00 of decode-only"
        elif r.workers:
            share = f"{rat[r.name]:.2f} of TRAIN per-core x {r.workers}"
            if r.name + "_cpu" in rat:
                share += f" (per CPU-s: {rat[r.name + '_cpu']:.2f} of TRAIN)"
        else:
            share = f"{rat[r.name]:.2f} of decode-only"
        lo, hi = min(r.rates), max(r.rates)
        cpu = f"{r.per_cpu_second:>10.1f}" if r.per_cpu_second else f"{'-':>10}"
        lines.append(f"{r.label:<32}{r.ips:>8.1f} {f'({lo:.0f}..{hi:.0f})':>13}"
                     f"{r.per_core:>9.1f}{cpu}  {share}")
    return "\n".join(lines)


def format_targets(results, cores):
    rat = ratios(results, cores)
    names = {"train": "TRAIN per-sample >= 0.60 of decode-only",
             "valid": "VALID per-sample >= 0.55 of decode-only",
             "loader_all": f"DataLoader, {cores} workers (one per core) >= 0.75 of TRAIN "
                           f"per-core x {cores}"}
    lines = []
    for name, _, minimum in TARGETS:
        if name in rat:
            ok = "met" if rat[name] >= minimum else "MISSED"
            extra = ""
            if name == "loader_all":
                extra = ("  (wall clock: needs the cores free; see the load average"
                         + (f"; per CPU-second {rat[f'loader_{cores}_cpu']:.2f})"
                            if f"loader_{cores}_cpu" in rat else ")"))
            lines.append(f"  {names[name]}: {rat[name]:.2f} {ok}{extra}")
    return "\n".join(lines)

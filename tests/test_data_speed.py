"""The fast input pipeline computes what the old one did (issue 18).

Reference: tests/reference_transforms.py, a frozen copy of the operators as they were before
the speed work, and the per-sample dataset item they made (reseed per (seed, epoch, index),
then each operator). Every operator, every recipe pipeline of configs/ (and AutoAugment,
RandAugment and RandomErasing ones) is compared with it pixel for pixel on real JPEG and PNG
files of several sizes and kinds, over seeds and epochs; then the loader, with 0 to 3 worker
processes, must give exactly those values batch after batch. Speed itself is measured by
``tools/benchmark.py --mode data`` (a smoke test of it is at the end), never asserted here.
"""
import glob
import io
import json
import os
import random
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

import reference_transforms as ref
from conftest import write_list
from ppcls.data import EpochBatchSampler, build_dataloader, make_loader, LoaderWorkerError
from ppcls.data import transforms as T
from ppcls.data.dataset import ClassificationDataset, DatasetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = (0, 7)


# ----------------------------------------------------------------------------- test images
def _encoded_images(tmp):
    """{name: path} of real files: photographs at the benchmark's size and odd ones."""
    from tools.prepare_demo_data import synthetic_photo
    rng = np.random.default_rng(3)
    photo = synthetic_photo(rng, 500, 375)                       # BGR
    small = synthetic_photo(rng, 53, 37)
    files = {}

    def put(name, data):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = path

    put("photo_q90.jpg", cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    put("photo2_q75.jpg", cv2.imencode(".jpg", synthetic_photo(rng, 500, 375),
                                       [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes())
    put("tall_progressive.jpg", cv2.imencode(".jpg", synthetic_photo(rng, 300, 417),
                                             [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes())
    put("small_53x37.jpg", cv2.imencode(".jpg", small)[1].tobytes())
    put("gray.jpg", cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))[1].tobytes())
    put("rgb.png", cv2.imencode(".png", photo[:240, :320])[1].tobytes())
    alpha = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    put("rgba.png", cv2.imencode(".png", np.dstack([photo[:240, :320], alpha]))[1].tobytes())
    put("gray16.png", cv2.imencode(".png", photo[:240, :320, 0].astype(np.uint16) * 257)[1].tobytes())
    rgb = Image.fromarray(photo[:, :, ::-1].copy())
    b = io.BytesIO()
    rgb.convert("CMYK").save(b, "JPEG")
    put("cmyk.jpg", b.getvalue())
    b = io.BytesIO()
    rgb.convert("P").save(b, "PNG")
    put("palette.png", b.getvalue())
    b = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6                                            # orientation: rotate 90
    rgb.save(b, "JPEG", exif=exif.tobytes())
    put("exif_rotated.jpg", b.getvalue())
    return files


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _encoded_images(str(tmp_path_factory.mktemp("speed_images")))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _reseed(seed, index):
    random.seed(seed * 1000 + index)
    np.random.seed(seed * 1000 + index)


def _same(a, b, what):
    assert type(a) is type(b), what
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    np.testing.assert_array_equal(a, b, err_msg=str(what))


# ----------------------------------------------------------------------------- operators
@pytest.mark.parametrize("params", [{}, {"to_rgb": False}, {"channel_first": True}])
def test_decode_gives_the_old_pixels_for_every_kind_of_file(images, params):
    for name, path in images.items():
        data = _read(path)
        _same(T.DecodeImage(**params)(data), ref.DecodeImage(**params)(data), (name, params))
    assert T.DecodeImage()(_read(images["exif_rotated.jpg"])).shape == (500, 375, 3)


def test_truncation_check_agrees_with_the_old_one(images):
    jpeg = _read(images["photo_q90.jpg"])
    for data in (jpeg, jpeg + b"trailing bytes", jpeg + b"\xff\xd9", jpeg[:-2], jpeg[:len(jpeg) // 2],
                 jpeg[:-2] + b"\xff\xda\x00", _read(images["rgb.png"]), b"\xff\xd8\xff", b""):
        assert T.jpeg_truncated(data) == ref.jpeg_truncated(data)
    assert not T.jpeg_truncated(jpeg) and T.jpeg_truncated(jpeg[:len(jpeg) // 2])


OPERATORS = [
    {"ResizeImage": {"resize_short": 256}},
    {"ResizeImage": {"resize_short": 256, "interpolation": "bicubic"}},
    {"ResizeImage": {"resize_short": 100, "interpolation": "area"}},
    {"ResizeImage": {"size": [224, 200], "interpolation": "lanczos"}},
    {"ResizeImage": {"size": 32, "interpolation": "nearest"}},
    {"CropImage": {"size": 32}},
    {"RandCropImage": {"size": 224}},
    {"RandCropImage": {"size": 224, "interpolation": "bicubic"}},
    {"RandCropImage": {"size": [40, 32], "scale": [0.7, 1.0], "ratio": [0.85, 1.18]}},
    {"RandFlipImage": {"flip_code": 1}},
    {"RandFlipImage": {"flip_code": 0}},
    {"RandFlipImage": {"flip_code": -1}},
    {"NormalizeImage": {}},
    {"NormalizeImage": {"scale": "1./255.", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}},
    {"NormalizeImage": {"scale": 1.0, "mean": [124, 116, 104], "std": [58.4, 57.1, 57.4]}},
    {"ToCHWImage": {}},
    {"AutoAugment": {}},
    {"RandAugment": {}},
    {"RandAugment": {"num_layers": 2, "magnitude": 9, "magnitude_std": 0.5}},
]


def _rng_state():
    state = np.random.get_state()
    return random.getstate(), state[1].tobytes(), state[2:]


@pytest.mark.parametrize("spec", OPERATORS, ids=lambda s: json.dumps(s)[2:60])
def test_every_operator_gives_the_old_pixels_and_draws_the_same_randomness(images, spec):
    (name, params), = spec.items()
    new, old = T.OPS[name](**params), ref.REFERENCE_OPS[name](**params)
    for fname in ("photo_q90.jpg", "tall_progressive.jpg", "small_53x37.jpg", "gray.jpg",
                  "rgba.png"):
        img = ref.DecodeImage()(_read(images[fname]))
        for seed in SEEDS:
            _reseed(seed, 1)
            a = new(img)
            after_new = _rng_state()
            _reseed(seed, 1)
            b = old(img)
            _same(a, b, (spec, fname, seed))
            assert _rng_state() == after_new, (spec, fname, seed)     # later draws unchanged


@pytest.mark.parametrize("mode", ["const", "pixel"])
def test_random_erasing_gives_the_old_values_on_hwc_and_chw(images, mode):
    img = ref.DecodeImage()(_read(images["photo_q90.jpg"]))[:64, :48]
    hwc = ref.NormalizeImage()(img)
    for x in (hwc, np.ascontiguousarray(hwc.transpose(2, 0, 1))):
        for seed in SEEDS:
            params = {"EPSILON": 1.0, "mode": mode, "mean": (0.1, 0.2, 0.3)}
            _reseed(seed, 2)
            a = T.RandomErasing(**params)(x)
            _reseed(seed, 2)
            b = ref.RandomErasing(**params)(x)
            _same(a, b, (mode, x.shape, seed))
            assert not np.array_equal(a, x)


@pytest.mark.parametrize("params", [{}, {"scale": 0.5, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]},
                                    {"scale": "1./255.", "mean": [0.5] * 3, "std": [0.5] * 3}])
def test_normalisation_tables_are_exact_for_every_uint8_value(params):
    """The lookup tables (per sample and per batch) against the formula for all 256 values of
    every channel, on HWC, CHW and NCHW layouts; float input keeps the formula."""
    every = np.arange(256, dtype=np.uint8)
    hwc = np.stack([every, every[::-1], np.roll(every, 7)], axis=-1).reshape(16, 16, 3)
    chw = np.ascontiguousarray(hwc.transpose(2, 0, 1))
    old = ref.NormalizeImage(**params)
    _same(T.NormalizeImage(**params)(hwc), old(hwc), "hwc")
    _same(T.NormalizeImage(order="chw", **params)(chw), ref.NormalizeImage(order="chw", **params)(chw), "chw")
    floats = hwc.astype(np.float32) + 0.25
    _same(T.NormalizeImage(**params)(floats), old(floats), "float input")
    batch = np.stack([chw, chw[:, ::-1], chw[:, :, ::-1]])
    want = np.stack([old(np.ascontiguousarray(x.transpose(1, 2, 0))).transpose(2, 0, 1) for x in batch])
    bn = T.BatchNormalize(T.NormalizeImage(**params))
    _same(bn.numpy(batch), want, "batch")
    out = np.full(batch.shape, np.nan, np.float32)
    assert bn.numpy(batch, out=out) is out
    _same(out, want, "batch into a buffer")
    import paddle
    _same(bn(paddle.to_tensor(batch)).numpy(), want, "batch tensor")


# ----------------------------------------------------------------------------- whole pipelines
def _recipe_pipelines():
    """Every distinct TRAIN/VALID transform list of configs/, plus AutoAugment, RandAugment
    and RandomErasing variants."""
    seen = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*.yaml"))):
        with open(path) as f:
            cfg = yaml.safe_load(f)
        for section in ("TRAIN", "VALID"):
            ops = (cfg.get(section) or {}).get("transforms")
            if ops:
                ops = [{k: (v or {}) for k, v in item.items()} for item in ops]
                seen.setdefault(json.dumps(ops, sort_keys=True),
                                (f"{os.path.basename(path)}:{section}", ops))
    head = [{"DecodeImage": {"to_rgb": True}}, {"RandCropImage": {"size": 64}},
            {"RandFlipImage": {"flip_code": 1}}]
    tail = [{"NormalizeImage": {}}, {"ToCHWImage": {}}]
    extra = {
        "autoaugment": head + [{"AutoAugment": {}}] + tail,
        "randaugment_erasing_const": head + [{"RandAugment": {"num_layers": 3}}, {"NormalizeImage": {}},
                                             {"RandomErasing": {"EPSILON": 0.8}}, {"ToCHWImage": {}}],
        "erasing_after_chw": head + tail + [{"RandomErasing": {"EPSILON": 1.0, "mode": "pixel"}}],
        "chw_then_normalize": head + [{"ToCHWImage": {}}, {"NormalizeImage": {"order": "chw"}}],
    }
    return [seen[k] for k in seen] + list(extra.items())


PIPELINES = _recipe_pipelines()


def test_the_recipe_pipelines_are_all_covered():
    names = [n for n, _ in PIPELINES]
    assert any("DLA60_best.yaml:TRAIN" == n for n in names)
    assert any("RandAugment" in json.dumps(ops) and "RandomErasing" in json.dumps(ops)
               for _, ops in PIPELINES if ":" in _)
    assert len(PIPELINES) >= 10


@pytest.fixture(scope="module")
def image_list(images, tmp_path_factory):
    folder = os.path.dirname(next(iter(images.values())))
    lst = write_list(tmp_path_factory.mktemp("lists") / "all.txt",
                     [f"{name} {i % 3}" for i, name in enumerate(sorted(images))])
    return folder, lst, sorted(images)


@pytest.mark.parametrize("name,ops", PIPELINES, ids=[n for n, _ in PIPELINES])
def test_dataset_items_of_every_pipeline_give_the_old_pixels(image_list, name, ops):
    """Per sample as before (batch_normalize False), and the uint8 items + the per-batch
    normalisation (as the loader runs it), against the old per-sample item."""
    folder, lst, names = image_list
    items = range(0, len(names), 2) if "digits" not in name else range(len(names))
    for seed, epoch in ((0, 0), (3, 1)):
        full = ClassificationDataset(folder, lst, ops, seed=seed)
        split = ClassificationDataset(folder, lst, ops, seed=seed, batch_normalize=True)
        full.set_epoch(epoch)
        split.set_epoch(epoch)
        for i in items:
            want = ref.reference_item(_read(os.path.join(folder, names[i])), ops, seed, epoch, i)
            got, label, index, skipped = full[i]
            _same(got, want, (name, names[i], seed, epoch))
            assert (int(index), int(skipped)) == (i, 0)
            if split.batch_normalize is not None:
                u8 = split[i][0]
                assert u8.dtype == np.uint8
                _same(split.batch_normalize.numpy(u8[None])[0], want, (name, "split", names[i]))


# ----------------------------------------------------------------------------- the loader
TRAIN_OPS = [{"DecodeImage": {}}, {"RandCropImage": {"size": 24}}, {"RandFlipImage": {}},
             {"NormalizeImage": {}}, {"ToCHWImage": {}}]


def _section(digits_dir, workers, transforms=TRAIN_OPS, batch=8, file_list="val_list.txt"):
    return {"data_dir": digits_dir, "file_list": os.path.join(digits_dir, file_list),
            "transforms": transforms, "batch_size": batch, "num_workers": workers,
            "shuffle_seed": 5}


def _epoch(loader, dataset, sampler, epoch, limit=None):
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    out = []
    for b in loader:
        out.append([t.numpy() for t in b])
        if limit and len(out) == limit:
            break
    return out


def test_loader_batches_are_the_same_with_any_number_of_workers_and_equal_the_old_items(digits_dir):
    runs = {}
    for workers in (0, 1, 3):
        loader, dataset, sampler = build_dataloader(_section(digits_dir, workers), "TRAIN", 10,
                                                    train=True, seed=11)
        runs[workers] = [_epoch(loader, dataset, sampler, e) for e in (0, 1)]
        if workers:
            pids = loader.worker_pids
            assert len(pids) == workers
            loader.close()
    for workers in (1, 3):
        for e in (0, 1):
            assert len(runs[workers][e]) == len(runs[0][e]) == len(loader)
            for a, b in zip(runs[workers][e], runs[0][e]):
                for x, y in zip(a, b):
                    _same(x, y, (workers, e))
    samples = dataset.samples
    for e, epoch in enumerate(runs[0]):
        for images, labels, index, skipped in epoch[:3]:
            assert images.dtype == np.float32 and images.shape == (8, 3, 24, 24)
            for row, i in zip(images, index):
                path, label = samples[int(i)]
                _same(row, ref.reference_item(_read(path), TRAIN_OPS, 11, e, int(i)), (e, int(i)))
    assert not np.array_equal(runs[0][0][0][0], runs[0][1][0][0])        # epochs differ


def test_persistent_workers_get_each_epochs_seeds_after_a_pass_left_early(digits_dir):
    """The same worker processes serve every epoch, each task carrying its epoch: a pass left
    after one batch, then full epochs, give what a fresh in-process loader gives."""
    loader, dataset, sampler = build_dataloader(_section(digits_dir, 2), "TRAIN", 10, train=True)
    inline, d0, s0 = build_dataloader(_section(digits_dir, 0), "TRAIN", 10, train=True)
    assert len(_epoch(loader, dataset, sampler, 0, limit=1)) == 1
    pids = loader.worker_pids
    for epoch in (1, 2):
        got, want = _epoch(loader, dataset, sampler, epoch), _epoch(inline, d0, s0, epoch)
        assert len(got) == len(want) == len(loader)
        for a, b in zip(got, want):
            for x, y in zip(a, b):
                _same(x, y, epoch)
        assert loader.worker_pids == pids
    first = iter(loader)
    next(first)
    second = iter(loader)
    next(second)                                    # a new pass supersedes the first
    with pytest.raises(RuntimeError, match="left for a newer one"):
        next(first)
    assert len(list(second)) == len(loader) - 1
    loader.close()
    for pid in pids:
        _wait_gone(pid)


def _wait_gone(pid, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:                                        # our zombie child: reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive")


class _Failing(ClassificationDataset):
    def __getitem__(self, index):
        if index == 5:
            raise DatasetError("image 5 cannot be read (injected)")
        return super().__getitem__(index)


def test_worker_errors_reach_the_trainer_as_they_were_raised(digits_dir):
    ds = _Failing(digits_dir, os.path.join(digits_dir, "val_list.txt"), TRAIN_OPS,
                  batch_normalize=True)
    loader = make_loader(ds, EpochBatchSampler(len(ds), 4), 2)
    with pytest.raises(DatasetError, match=r"image 5 cannot be read \(injected\)") as info:
        list(loader)
    assert "in loader worker" in str(info.value.__cause__)
    assert loader.worker_pids == []                          # a failed pass ends the workers
    # items of different shapes cannot be stacked: said with the fix
    varying = ClassificationDataset(digits_dir, os.path.join(digits_dir, "val_list.txt"),
                                    [{"DecodeImage": {}}, {"RandCropImage": {"size": 8}}],
                                    batch_normalize=True)
    varying.ops[1] = _RandomSize()
    loader = make_loader(varying, EpochBatchSampler(len(varying), 4), 1)
    with pytest.raises(ValueError, match="items of a batch must have the same shape.*crop or resize"):
        list(loader)


class _RandomSize:
    def __call__(self, img):
        n = random.randint(6, 9)
        return np.ascontiguousarray(img[:n, :n])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc")
def test_a_killed_worker_is_named_instead_of_a_hang(digits_dir):
    loader, dataset, sampler = build_dataloader(_section(digits_dir, 1), "TRAIN", 10, train=True)
    it = iter(loader)
    next(it)
    pid, = loader.worker_pids
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(LoaderWorkerError, match=rf"loader worker 0 \(pid {pid}\) was killed by "
                                                rf"signal SIGKILL; out of memory\?"):
        for _ in it:
            pass


def test_recycled_batch_buffers_are_never_overwritten_while_a_tensor_refers_to_them():
    import paddle
    from ppcls.data.tensors import BufferPool, wrap
    shape, pool = (2, 3, 4, 4), BufferPool(per_shape=3)
    kept = pool.buffers.setdefault((shape, np.dtype(np.float32).str), [])
    a = pool.get(shape, np.float32)
    a[...] = 1
    t = wrap(a)
    del a
    view, graph = t.reshape([2, 48]), paddle.nn.Conv2D(3, 2, 3)(t).sum()
    del t
    b = pool.get(shape, np.float32)               # the first is held by the view and the graph
    assert b is not kept[0]
    b[...] = 2
    del b
    assert float(view.sum()) == 96.0               # still the first batch's values
    del view
    assert pool.get(shape, np.float32) is kept[1]   # the graph still holds the first
    graph.backward()
    del graph
    assert pool.get(shape, np.float32) is kept[0]   # nothing refers to it any more
    assert len(kept) == 2


# ----------------------------------------------------------------------------- the benchmark
def _run_benchmark(*args, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_benchmark_data_mode_prints_rates_ratios_and_targets(tmp_path):
    from tools.prepare_demo_data import prepare_photos
    prepare_photos(str(tmp_path / "photos"), count=8, size=(120, 90), classes=2)
    out = _run_benchmark("--mode", "data", "-c", "configs/DLA/DLA60_best.yaml", "--data",
                         str(tmp_path / "photos"), "--batch_size", "4", "--workers", "1",
                         "--warmup", "1", "--iters", "2", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "load average at start:" in text and "load average at end:" in text
    rows = {r["case"]: r for r in (json.loads(l[5:]) for l in text.splitlines() if l.startswith("JSON "))}
    assert list(rows) == ["decode", "train", "valid", "loader_1"]
    for r in rows.values():
        assert r["rounds"] == 2 and r["ips_min"] <= r["ips"] <= r["ips_max"] and r["ips"] > 0
    assert rows["train"]["share"] == pytest.approx(rows["train"]["ips"] / rows["decode"]["ips"], rel=1e-3)
    assert rows["valid"]["share"] == pytest.approx(rows["valid"]["ips"] / rows["decode"]["ips"], rel=1e-3)
    assert rows["loader_1"]["share"] == pytest.approx(rows["loader_1"]["ips"] / rows["train"]["ips"], rel=1e-3)
    assert rows["loader_1"]["clock"] == "wall" and rows["train"]["clock"] == "cpu"
    assert "TRAIN per-sample >= 0.60 of decode-only:" in text


def test_benchmark_data_mode_rejects_bad_requests_with_one_line(tmp_path):
    out = _run_benchmark("--mode", "data")
    assert out.returncode == 2 and "--mode data needs -c RECIPE" in out.stderr
    out = _run_benchmark("--mode", "data", "-c", os.path.join(ROOT, "configs/DLA/DLA60_best.yaml"),
                         cwd=tmp_path)
    assert out.returncode == 2 and "prepare_demo_data.py --photos 512 --out dataset/photos" in out.stderr
    out = _run_benchmark("--mode", "data", "-c", "configs/DLA/DLA60_best.yaml", "--data",
                         str(tmp_path), "--workers", "0")
    assert out.returncode == 2 and "--workers must be" in out.stderr
    assert "Traceback" not in out.stderr

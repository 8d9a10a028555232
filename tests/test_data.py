import logging
import os

import cv2
import numpy as np
import pytest

from conftest import write_list
from ppcls.data import EpochBatchSampler
from ppcls.data.dataset import ClassificationDataset, DatasetError, parse_file_list
from ppcls.data.transforms import (BadImageError, CropImage, DecodeImage, NormalizeImage,
                                   RandCropImage, RandFlipImage, RandomErasing, ResizeImage,
                                   ToCHWImage, AutoAugment, RandAugment)


def png_bytes(h=50, w=80, seed=0):
    img = np.random.RandomState(seed).randint(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes(), img


def test_decode_gives_rgb_uint8_and_rejects_garbage():
    data, bgr = png_bytes()
    img = DecodeImage(to_rgb=True)(data)
    assert img.dtype == np.uint8 and img.shape == (50, 80, 3)
    np.testing.assert_array_equal(img, bgr[:, :, ::-1])
    for bad in (b"", b"not an image at all", data[:40]):
        with pytest.raises(BadImageError):
            DecodeImage()(bad)


def test_geometry_ops_shapes():
    _, img = png_bytes(60, 90)
    assert ResizeImage(resize_short=30)(img).shape == (30, 45, 3)
    assert ResizeImage(size=[40, 20])(img).shape == (20, 40, 3)
    assert CropImage(24)(ResizeImage(resize_short=30)(img)).shape == (24, 24, 3)
    out = RandCropImage(32, scale=[0.5, 1.0])(img)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert RandFlipImage(1)(img).shape == img.shape
    with pytest.raises(ValueError, match="smaller than the crop"):
        CropImage(100)(img)


def test_normalize_and_chw_values():
    img = np.full((4, 4, 3), 255, np.uint8)
    out = NormalizeImage(scale="1./255.", mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [2.0, 1.0, 0.5], rtol=1e-6)
    chw = ToCHWImage()(out)
    assert chw.shape == (3, 4, 4) and chw.flags["C_CONTIGUOUS"]
    with pytest.raises(ValueError, match="fraction"):
        NormalizeImage(scale="__import__('os')")


def test_augmentations_keep_shape_and_dtype():
    _, img = png_bytes(40, 40)
    for op in (AutoAugment(), RandAugment(2, 9, 0.5)):
        for _ in range(5):
            out = op(img)
            assert out.shape == img.shape and out.dtype == np.uint8
    chw = np.zeros((3, 32, 32), np.float32)
    erased = RandomErasing(EPSILON=1.0, mode="pixel")(chw)
    assert erased.shape == chw.shape and (erased != 0).any()
    assert (RandomErasing(EPSILON=0.0)(chw) == 0).all()


def make_dataset(digits_dir, transforms=None, **kw):
    transforms = transforms or [{"DecodeImage": {}}, {"RandCropImage": {"size": 24}},
                                {"RandAugment": {}}, {"NormalizeImage": {}}, {"ToCHWImage": {}}]
    return ClassificationDataset(digits_dir, os.path.join(digits_dir, "val_list.txt"),
                                 transforms, classes_num=10, **kw)


def test_augmentation_is_deterministic_per_seed_epoch_and_sample(digits_dir):
    a, b = make_dataset(digits_dir, seed=3), make_dataset(digits_dir, seed=3)
    x1, y1, i1, s1 = a[5]
    x2, *_ = b[5]
    np.testing.assert_array_equal(x1, x2)
    assert x1.shape == (3, 24, 24) and x1.dtype == np.float32 and i1 == 5 and s1 == 0
    b.set_epoch(1)
    assert not np.array_equal(x1, b[5][0])
    assert not np.array_equal(x1, make_dataset(digits_dir, seed=4)[5][0])


def test_file_list_errors_name_the_line(tmp_path, digits_dir):
    lst = write_list(tmp_path / "l.txt", ["images/0/0000.png 0", "images/1/missing.png 1",
                                          "images/2/0002.png 10", "justonefield", "images/0/0000.png x"])
    with pytest.raises(DatasetError) as info:
        parse_file_list(lst, digits_dir, classes_num=10)
    msg = str(info.value)
    assert "4 problem(s)" in msg
    assert "line 2: file not found" in msg and "missing.png" in msg
    assert "line 3: label 10 outside [0, 10)" in msg
    assert "line 4: expected 'relative/path label'" in msg
    assert "line 5: label 'x' is not an integer" in msg
    with pytest.raises(DatasetError, match="file list not found"):
        parse_file_list(str(tmp_path / "none.txt"), digits_dir)


def test_tab_separated_lists_and_paths_with_spaces(tmp_path):
    os.makedirs(tmp_path / "a b")
    cv2.imwrite(str(tmp_path / "a b" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    lst = write_list(tmp_path / "l.txt", ["a b/x.png\t3"])
    assert parse_file_list(lst, str(tmp_path), 5) == [(os.path.join(str(tmp_path), "a b/x.png"), 3)]


def test_undecodable_image_is_replaced_counted_and_reported_once(tmp_path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"")
    lst = write_list(tmp_path / "l.txt", ["0.png 0", "bad.png 1", "1.png 1", "2.png 2"])
    ds = ClassificationDataset(str(tmp_path), lst, [{"DecodeImage": {}}], classes_num=3)
    with caplog.at_level(logging.WARNING, logger="ppcls"):
        img, label, index, skipped = ds[1]
        ds[1]
    assert skipped == 1 and label == 1 and index == 1       # replaced by the next sample
    np.testing.assert_array_equal(img, ds[2][0])
    reports = [r for r in caplog.records if "bad.png" in r.getMessage()]
    assert len(reports) == 1


def test_image_folder_layout(tmp_path):
    for cls in ("cat", "dog"):
        os.makedirs(tmp_path / cls)
        for i in range(2):
            cv2.imwrite(str(tmp_path / cls / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
    ds = ClassificationDataset(str(tmp_path), "", [{"DecodeImage": {}}], classes_num=2)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 4
    assert [label for _, label in ds.samples] == [0, 0, 1, 1]
    with pytest.raises(DatasetError, match="2 class sub-folders but classes_num is 3"):
        ClassificationDataset(str(tmp_path), "", [], classes_num=3)


def test_sampler_shards_cover_the_set_and_pad_for_eval():
    shards = [list(EpochBatchSampler(11, 4, rank=r, world_size=2)) for r in range(2)]
    flat = [i for s in shards for b in s for i in b]
    assert sorted(set(flat)) == list(range(11)) and len(flat) == 12   # one padding repeat
    assert [len(s) for s in shards] == [2, 2]
    train = EpochBatchSampler(11, 4, world_size=1, shuffle=True, drop_last=True, seed=1)
    first = list(train)
    train.set_epoch(1)
    assert len(first) == len(train) == 2 and list(train) != first


# ----------------------------------------------------------------------------- per-batch normalisation
def _loader_batches(digits_dir, transforms, num_workers=0):
    from ppcls.data import build_dataloader
    section = {"data_dir": digits_dir, "file_list": os.path.join(digits_dir, "val_list.txt"),
               "transforms": transforms, "batch_size": 8, "num_workers": num_workers,
               "shuffle_seed": 0}
    loader, dataset, _ = build_dataloader(section, "VALID", 10, train=False)
    return loader, dataset, [b for _, b in zip(range(3), loader)]


@pytest.mark.parametrize("tail", [
    [{"NormalizeImage": {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]}}, {"ToCHWImage": {}}],
    [{"ToCHWImage": {}}, {"NormalizeImage": {"order": "chw", "scale": 0.5}}]])
def test_workers_send_uint8_and_the_batch_is_normalised_to_the_same_values(digits_dir, tail):
    head = [{"DecodeImage": {}}, {"RandCropImage": {"size": 24}}, {"RandFlipImage": {}}]
    loader, dataset, batches = _loader_batches(digits_dir, head + tail, num_workers=1)
    assert dataset.batch_normalize is not None
    item = dataset[0][0]
    assert item.dtype == np.uint8 and item.shape == (3, 24, 24)          # what workers send
    per_sample = make_dataset(digits_dir, head + tail)                     # the old path
    assert per_sample.batch_normalize is None
    for batch in batches:
        images, index = batch[0], batch[2].numpy().reshape(-1)
        assert str(images.dtype).endswith("float32") and list(images.shape) == [8, 3, 24, 24]
        want = np.stack([per_sample[int(i)][0] for i in index])
        np.testing.assert_allclose(images.numpy(), want, rtol=0, atol=1e-6)
    assert len(loader) == -(-len(dataset) // 8)


def test_pipelines_that_need_normalised_samples_stay_per_sample(digits_dir):
    erase = [{"DecodeImage": {}}, {"RandCropImage": {"size": 24}}, {"NormalizeImage": {}},
             {"ToCHWImage": {}}, {"RandomErasing": {"EPSILON": 1.0}}]
    loader, dataset, batches = _loader_batches(digits_dir, erase)
    assert dataset.batch_normalize is None and dataset[0][0].dtype == np.float32
    assert str(batches[0][0].dtype).endswith("float32")
    assert (batches[0][0].numpy() == 0).any()                           # the erased rectangles


def test_synthetic_photo_folder_for_the_loading_benchmark(tmp_path):
    from tools.prepare_demo_data import prepare_photos
    n_train, n_val = prepare_photos(str(tmp_path), count=10, size=(500, 375), classes=4)
    assert (n_train, n_val) == (8, 2)
    lines = open(tmp_path / "train_list.txt").read().split("\n")[:-1] + \
        open(tmp_path / "val_list.txt").read().split("\n")[:-1]
    assert len(lines) == 10
    for line in lines:
        rel, label = line.split()
        img = cv2.imread(str(tmp_path / rel))
        assert img.shape == (375, 500, 3) and rel.endswith(".jpg")
        assert f"class_{label}/" in rel and img.std() > 10      # not a flat colour

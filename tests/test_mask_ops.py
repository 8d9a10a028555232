"""Cutout, GridMask, HideAndSeek (per sample, after NormalizeImage) and FmixOperator (per batch):
shapes and dtypes, determinism under a seed, and what each one masks."""
import os
import random

import numpy as np
import paddle
import pytest

from ppcls.data.dataset import ClassificationDataset
from ppcls.data.fmix import FmixOperator, low_freq_image
from ppcls.data.mask_ops import Cutout, GridMask, HideAndSeek
from ppcls.data.mix import BatchMixer, check_mix_ops
from ppcls.data.transforms import check_ops, check_pipeline
from ppcls.utils.config import ConfigError, Where


def image(h=40, w=40, chw=False, seed=0):
    """A normalised-looking float32 image with no zeros, so hidden pixels are exactly the 0s."""
    img = np.random.RandomState(seed).uniform(0.5, 2.0, (h, w, 3)).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1)) if chw else img


def hidden(out, img, chw=False):
    """(h, w) bool: the pixels set to 0 in every channel; everything else must be unchanged."""
    axis = 0 if chw else 2
    zero = (out == 0).all(axis=axis)
    kept = ~zero[None] if chw else ~zero[..., None]
    np.testing.assert_array_equal(np.where(kept, out, 0), np.where(kept, img, 0))
    return zero


def seeded(op, img, seed):
    np.random.seed(seed)
    random.seed(seed)
    return op(img)


OPS = [Cutout(n_holes=2, length=12), GridMask(d1=6, d2=20, ramp_epochs=0),
       HideAndSeek(grid_sizes=[8, 16])]


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
@pytest.mark.parametrize("chw", [False, True], ids=["hwc", "chw"])
def test_shape_dtype_and_the_input_is_not_changed(op, chw):
    img = image(40, 48, chw)
    before = img.copy()
    for seed in range(4):
        out = seeded(op, img, seed)
        assert out.shape == img.shape and out.dtype == np.float32
        assert hidden(out, img, chw).any()
    np.testing.assert_array_equal(img, before)
    u8 = (image(40, 48) * 100).astype(np.uint8)
    assert seeded(op, u8, 0).dtype == np.uint8


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
def test_deterministic_under_a_seed(op):
    img = image()
    a, b, c = seeded(op, img, 7), seeded(op, img, 7), seeded(op, img, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cutout_hides_squares_of_length_around_uniform_centres():
    img, length = image(40, 40), 12
    for seed in range(20):
        out = seeded(Cutout(n_holes=1, length=length), img, seed)
        np.random.seed(seed)
        y, x = np.random.randint(40), np.random.randint(40)        # release/2.0's draws
        want = np.zeros((40, 40), bool)
        want[max(y - 6, 0):y + 6, max(x - 6, 0):x + 6] = True
        np.testing.assert_array_equal(hidden(out, img), want)
    assert Cutout(n_holes=0)(img) is not img and np.array_equal(Cutout(n_holes=0)(img), img)


def test_gridmask_hides_a_periodic_grid_and_mode_1_inverts_it():
    img = image(40, 40)
    for seed in range(5):
        zero = hidden(seeded(GridMask(d1=10, d2=11, ratio=0.5, ramp_epochs=0), img, seed), img)
        rows, cols = zero.all(axis=1), zero.all(axis=0)           # the hidden stripes
        np.testing.assert_array_equal(zero, rows[:, None] | cols[None, :])
        for stripes in (rows, cols):                               # period 10, 5 hidden each
            np.testing.assert_array_equal(stripes[:30], stripes[10:])
            assert stripes[:10].sum() == 5
        keep = seeded(GridMask(d1=10, d2=11, mode=1, ramp_epochs=0), img, seed)
        np.testing.assert_array_equal(hidden(keep, img), ~zero)
    rotated = seeded(GridMask(d1=10, d2=11, rotate=360, ramp_epochs=0), img, 3)
    assert 0.5 < hidden(rotated, img).mean() < 0.9


def test_gridmask_probability_ramps_with_the_epoch():
    img, op = image(), GridMask(d1=6, d2=20, prob=0.8, ramp_epochs=4)
    applied = []
    for epoch in (0, 2, 4, 9):
        op.set_epoch(epoch)
        applied.append(np.mean([hidden(seeded(op, img, s), img).any() for s in range(300)]))
    assert applied[0] == 0.0
    assert abs(applied[1] - 0.4) < 0.1 and abs(applied[2] - 0.8) < 0.08
    assert abs(applied[3] - 0.8) < 0.08                             # capped at prob
    assert GridMask(ramp_epochs=0).current_prob() == 1.0


def test_hide_and_seek_hides_whole_cells_of_one_grid_size_with_probability_half():
    img = image(112, 112)
    fractions, sizes = [], set()
    for seed in range(60):
        zero = hidden(seeded(HideAndSeek(), img, seed), img)
        if not zero.any():
            continue
        # the largest grid size in {16, 32, 44, 56} whose cells are each all hidden or all kept
        fits = [g for g in (56, 44, 32, 16) if all(
            len(np.unique(zero[y:y + g, x:x + g])) == 1
            for y in range(0, 112, g) for x in range(0, 112, g))]
        assert fits, f"seed {seed}: the hidden pixels are not whole grid cells"
        sizes.add(fits[0])
        fractions.append(zero.mean())
    assert len(sizes) >= 3                         # the grid size is drawn per image
    assert 0.35 < np.mean(fractions) < 0.65        # each cell hidden with probability 0.5
    assert (seeded(HideAndSeek(grid_sizes=[8], hide_prob=1.0), img, 0) == 0).all()
    np.testing.assert_array_equal(seeded(HideAndSeek(grid_sizes=[0]), img, 0), img)


@pytest.mark.parametrize("name, params, message", [
    ("Cutout", {"n_holes": -1}, "n_holes must be an integer >= 0"),
    ("Cutout", {"length": 0}, "length must be an integer >= 1"),
    ("GridMask", {"d1": 96, "d2": 96}, "d2 must be > d1"),
    ("GridMask", {"ratio": 1.5}, r"ratio must be a number in \[0, 1\]"),
    ("GridMask", {"mode": 2}, "mode must be 0"),
    ("HideAndSeek", {"hide_prob": 2}, "hide_prob"),
    ("HideAndSeek", {"grid": 8}, "unknown parameter"),
])
def test_bad_parameters_are_one_config_error_naming_the_operator(name, params, message):
    with pytest.raises(ConfigError, match=rf"TRAIN\.transforms\.0\.{name}.*{message}"):
        check_ops([{name: params}], Where("r.yaml").child("TRAIN.transforms"))


def test_config_time_check_runs_them_after_normalize_on_hwc_float():
    ops = [{"DecodeImage": {}}, {"RandCropImage": {"size": 224}}, {"NormalizeImage": {}},
           {"Cutout": {}}, {"GridMask": {"ramp_epochs": 0}}, {"HideAndSeek": {}},
           {"ToCHWImage": {}}]
    check_ops(ops, Where("r.yaml"))
    check_pipeline(ops, "TRAIN")


def test_dataset_reseeds_them_per_sample_and_passes_the_epoch(digits_dir):
    ops = [{"DecodeImage": {}}, {"RandCropImage": {"size": 32}}, {"NormalizeImage": {}},
           {"Cutout": {"n_holes": 1, "length": 8}}, {"HideAndSeek": {"grid_sizes": [8]}},
           {"GridMask": {"d1": 6, "d2": 12, "ramp_epochs": 2}}, {"ToCHWImage": {}}]
    def make():
        return ClassificationDataset(digits_dir, os.path.join(digits_dir, "val_list.txt"), ops,
                                     classes_num=10, seed=1, batch_normalize=True)
    a, b = make(), make()
    assert a.batch_normalize is None            # ops after NormalizeImage: normalised per sample
    np.testing.assert_array_equal(a[3][0], b[3][0])
    gm = a.ops[5]
    assert isinstance(gm, GridMask) and gm.current_prob() == 0.0
    a.set_epoch(2)
    assert gm.current_prob() == 1.0 and not np.array_equal(a[3][0], b[3][0])


# ----------------------------------------------------------------------------- FMix
def batch(n=6, h=16, w=16):
    """Images whose every pixel value says which sample it came from (sample i: value i)."""
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 3, h, w))
    return paddle.to_tensor(np.ascontiguousarray(x)), paddle.to_tensor(np.arange(n) * 10)


def test_fmix_shape_labels_and_a_hard_mask_of_mean_lam():
    images, labels = batch()
    for seed in range(10):
        mixed, la, lb, lam = FmixOperator()(images, labels, np.random.RandomState(seed))
        assert mixed.shape == images.shape and str(mixed.dtype).endswith("float32")
        assert isinstance(lam, float) and 0.0 <= lam <= 1.0
        m, perm = mixed.numpy(), lb.numpy() // 10
        np.testing.assert_array_equal(la.numpy(), labels.numpy())
        own, partner = np.arange(6)[:, None, None, None], perm[:, None, None, None]
        from_own = m == own
        assert (from_own | (m == partner)).all()                # each pixel from x or x[perm]
        moved = np.flatnonzero(perm != np.arange(6))
        mask = from_own[moved[0], 0]                            # one mask for the whole batch
        assert all((from_own[i] == mask).all() for i in moved)
        assert abs(mask.mean() - lam) <= 1.0 / mask.size       # lam weighs the kept images


def test_fmix_deterministic_under_the_mixer_seed_and_soft_edges():
    images, labels = batch()
    op = FmixOperator(alpha=1.0, max_soft=0.2)
    a = op(images, labels, np.random.RandomState(3))[0].numpy()
    b = op(images, labels, np.random.RandomState(3))[0].numpy()
    c = op(images, labels, np.random.RandomState(4))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    lam, mask = op.sample(16, 16, np.random.RandomState(5))
    assert mask.min() >= 0 and mask.max() <= 1 and ((mask > 0) & (mask < 1)).any()
    assert abs(mask.mean() - lam) <= 1.0 / mask.size


def test_fmix_lam_distribution_and_mask_spectrum():
    rng = np.random.RandomState(0)
    lams = [FmixOperator(alpha=1.0, reformulate=True).sample(8, 8, rng)[0] for _ in range(600)]
    assert abs(np.mean(lams) - 2.0 / 3.0) < 0.04              # Beta(2, 1)
    lams = [FmixOperator(alpha=1.0).sample(8, 8, rng)[0] for _ in range(600)]
    assert abs(np.mean(lams) - 0.5) < 0.04                     # Beta(1, 1)
    # the canonical FMix layout: only horizontal frequency bins 0 and 1 carry energy
    spec = np.abs(np.fft.rfft2(low_freq_image(32, 32, 3.0, rng)))
    assert spec[:, 2:].max() < 1e-9 * spec.max() and spec[:, 1].max() > 1e-3 * spec.max()


def test_fmix_is_a_batch_operator_of_the_mixer():
    check_mix_ops([{"FmixOperator": {"alpha": 1, "decay_power": 3, "max_soft": 0.0,
                                     "reformulate": False}}], Where("r.yaml"))
    with pytest.raises(ConfigError, match=r"0\.FmixOperator: max_soft must be a number in"):
        check_mix_ops([{"FmixOperator": {"max_soft": 0.7}}], Where("r.yaml"))
    images, labels = batch()
    mixed, la, lb, lam = BatchMixer([{"FmixOperator": {}}], seed=0)(images, labels)
    assert mixed.shape == images.shape and 0 <= lam <= 1


def test_loader_workers_give_the_same_masks_and_see_the_epoch(digits_dir):
    """One loader worker and none give identical batches at epoch 0 (GridMask's ramp at 0: as
    without GridMask) and at epoch 2 (ramp done: GridMask masks): the epoch reaches the worker."""
    from ppcls.data import build_dataloader
    grid = {"GridMask": {"d1": 6, "d2": 12, "ramp_epochs": 2}}
    ops = [{"DecodeImage": {}}, {"RandCropImage": {"size": 32}}, {"NormalizeImage": {}},
           {"Cutout": {"length": 8}}, {"HideAndSeek": {"grid_sizes": [8]}}, grid,
           {"ToCHWImage": {}}]      # GridMask last: its draw would shift the others' numbers
    got = {}
    for key, workers, transforms in (("0 workers", 0, ops), ("1 worker", 1, ops),
                                     ("no GridMask", 0, [o for o in ops if o is not grid])):
        section = {"data_dir": digits_dir, "file_list": os.path.join(digits_dir, "val_list.txt"),
                   "transforms": transforms, "batch_size": 8, "num_workers": workers,
                   "shuffle_seed": 0}
        loader, dataset, _ = build_dataloader(section, "VALID", 10, train=False, seed=4)
        for epoch in (0, 2):
            dataset.set_epoch(epoch)
            got[key, epoch] = next(iter(loader))[0].numpy()
    for epoch in (0, 2):
        np.testing.assert_array_equal(got["0 workers", epoch], got["1 worker", epoch])
    np.testing.assert_array_equal(got["0 workers", 0], got["no GridMask", 0])
    assert (got["0 workers", 2] == 0).sum() > (got["no GridMask", 2] == 0).sum()

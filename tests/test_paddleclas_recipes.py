"""PaddleClas release/2.0 recipes run here unchanged but for data paths, class count and epochs.

The recipes are written below in release/2.0's key layout, keys and values as its configs carry
them (4-space indents, quoted strings, ``ls_epsilon: -1``, DecodeImage's ``to_np`` and
``channel_first``, ``scale: 1./255.`` and ``1.0/255.0``, ``order: ''``, RandomErasing after
ToCHWImage): plain ResNet18/ResNet50/ResNeXt50_32x4d/MobileNetV2 and the ResNet50 of each
augmentation of configs/DataAugment, plus FmixOperator, which release/2.0 ships without a recipe,
and the SSLD distillation form (``use_distillation: True``, ``<Teacher>_distill_<Student>``).

To add a kind, add an entry to RECIPES: the parts that differ from the plain
ResNet50 recipe (the arguments of ``release_recipe``), and optionally ``counts`` (an operator
whose calls in the training path are counted), ``notes`` (log lines the run must print) and
``overrides`` (a function of the run's output directory returning extra ``-o`` values, e.g. a
teacher's weights; say in the entry why they are needed).

Overrides, all through ``-o`` as a user would pass them:
* allowed by the issue: data paths, ``classes_num``, ``epochs`` (and ``model_save_dir``, the
  output path);
* forced by the tiny data: ``TRAIN.batch_size`` (a few dozen images, the recipes say 256);
* for speed only: ``num_workers=0``, ``cpu_threads=1``, ``use_static_eval=False`` (but for
  EVAL_RECIPE, which keeps the default oneDNN evaluation) and, in the training test,
  crops of 32 instead of 224 (list entries cannot be overridden with ``-o``, so the recipe text
  is written at 32; the loading test reads every recipe at 224, as written).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, write_list
from ppcls.data import build_dataloader
from ppcls.data import mix as mix_module
from ppcls.data import transforms as transforms_module
from ppcls.engine.recipe import load_config

PIECEWISE = """    function: 'Piecewise'
    params:
        lr: 0.1
        decay_epochs: [30, 60, 90]
        gamma: 0.1"""
COSINE = """    function: 'Cosine'
    params:
        lr: 0.1"""


DECODE = """        - DecodeImage:
            to_rgb: True
            to_np: False
            channel_first: False
"""          # as release/2.0 writes it, in TRAIN and VALID


def release_recipe(arch="ResNet50", lr=COSINE, epochs=300, use_mix=False, top="",
                   pretrained_model='""', before_normalize="", after_normalize="", after_chw="",
                   mix="", size=224, resize_short=256):
    """A recipe in release/2.0's layout. ``top``: extra top-level lines (YAML text, e.g.
    ``use_distillation: True``); ``pretrained_model``: its YAML value; ``before_normalize``,
    ``after_normalize``, ``after_chw``: TRAIN transform entries at those places; ``mix``: the
    TRAIN.mix entries (``use_mix`` then True)."""
    return f"""mode: 'train'
ARCHITECTURE:
    name: '{arch}'

pretrained_model: {pretrained_model}
model_save_dir: "./output/"
classes_num: 1000
total_images: 1281167
save_interval: 1
validate: True
valid_interval: 1
epochs: {epochs}
topk: 5
image_shape: [3, {size}, {size}]

use_mix: {use_mix}
ls_epsilon: -1
{top}
LEARNING_RATE:
{lr}

OPTIMIZER:
    function: 'Momentum'
    params:
        momentum: 0.9
    regularizer:
        function: 'L2'
        factor: 0.000100

TRAIN:
    batch_size: 256
    num_workers: 4
    file_list: "./dataset/ILSVRC2012/train_list.txt"
    data_dir: "./dataset/ILSVRC2012/"
    shuffle_seed: 0
    transforms:
{DECODE}        - RandCropImage:
            size: {size}
        - RandFlipImage:
            flip_code: 1
{before_normalize}        - NormalizeImage:
            scale: 1./255.
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            order: ''
{after_normalize}        - ToCHWImage:
{after_chw}{mix}
VALID:
    batch_size: 64
    num_workers: 4
    file_list: "./dataset/ILSVRC2012/val_list.txt"
    data_dir: "./dataset/ILSVRC2012/"
    shuffle_seed: 0
    transforms:
{DECODE}        - ResizeImage:
            resize_short: {resize_short}
        - CropImage:
            size: {size}
        - NormalizeImage:
            scale: 1.0/255.0
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            order: ''
        - ToCHWImage:
"""


def op(name, **params):
    """A transform or mix entry as release/2.0 writes it; values are YAML text."""
    return f"        - {name}:\n" + "".join(f"            {k}: {v}\n" for k, v in params.items())


def mix(name, **params):
    return "    mix:\n" + op(name, **params)


RECIPES = {
    "ResNet50": dict(lr=PIECEWISE, epochs=120),
    "ResNet18": dict(arch="ResNet18", epochs=120),
    "ResNeXt50_32x4d": dict(arch="ResNeXt50_32x4d", lr=PIECEWISE, epochs=120),
    "MobileNetV2": dict(arch="MobileNetV2", epochs=240,
                        lr="    function: 'Cosine'\n    params:\n        lr: 0.045"),
    "ResNet50_AutoAugment": dict(before_normalize=op("AutoAugment"), counts="AutoAugment"),
    "ResNet50_RandAugment": dict(before_normalize=op("RandAugment", num_layers=2, magnitude=5),
                                 counts="RandAugment"),
    "ResNet50_Cutout": dict(after_normalize=op("Cutout", n_holes=1, length=112), counts="Cutout"),
    "ResNet50_GridMask": dict(after_normalize=op("GridMask", d1=96, d2=224, rotate=1, ratio=0.5,
                                                 mode=0),
                              counts="GridMask",
                              notes=["note: GridMask: probability ramps linearly from 0"]),
    "ResNet50_HideAndSeek": dict(after_normalize=op("HideAndSeek"), counts="HideAndSeek"),
    "ResNet50_RandomErasing": dict(after_chw=op("RandomErasing", EPSILON=0.5, sl=0.02, sh=0.4,
                                                r1=0.3, mean="[0., 0., 0.]"),
                                   counts="RandomErasing"),
    "ResNet50_Mixup": dict(use_mix=True, mix=mix("MixupOperator", alpha=0.2),
                           counts="MixupOperator"),
    "ResNet50_Cutmix": dict(use_mix=True, mix=mix("CutmixOperator", alpha=0.2),
                            counts="CutmixOperator"),
    "ResNet50_Fmix": dict(use_mix=True, mix=mix("FmixOperator", alpha=1, decay_power=3,
                                                max_soft="0.", reformulate=False),
                          counts="FmixOperator"),
    # release/2.0's SSLD form (its recipe distills ResNet50_vd into MobileNetV3, which are not
    # registered here; the same keys with two registered models): use_distillation, the pair
    # name, the teacher's weights as pretrained_model
    "ResNet50_distill_MobileNetV2": dict(arch="ResNet50_distill_MobileNetV2",
                                         top="use_distillation: True\n",
                                         overrides=lambda out: [f"pretrained_model={_teacher(out)}"],
                                         notes=["distillation: teacher ResNet50 loaded from"]),
}

EVAL_RECIPE = "ResNet18"


def _teacher(out_dir):
    """A ResNet50 teacher's weights (10 classes) for the distillation recipe: the path a
    release/2.0 user gives as pretrained_model. Random weights: the run's mechanics are tested."""
    import paddle
    from ppcls.modeling import build_model
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(str(out_dir), "teacher_ResNet50")
    if not os.path.isfile(prefix + ".pdparams"):
        paddle.save(build_model("ResNet50", class_dim=10).state_dict(), prefix + ".pdparams")
    return prefix        # keeps the default oneDNN evaluation; tools/eval.py runs on it


def recipe_text(name, **size):
    parts = {k: v for k, v in RECIPES[name].items() if k not in ("counts", "notes", "overrides")}
    return release_recipe(**parts, **size)


@pytest.fixture(scope="module")
def tiny_lists(digits_dir, tmp_path_factory):
    """32 training and 16 validation digits, spread over the ten classes."""
    out = tmp_path_factory.mktemp("lists")
    lines = {}
    for split, n in (("train", 32), ("val", 16)):
        with open(os.path.join(digits_dir, f"{split}_list.txt")) as f:
            rows = [r.strip() for r in f if r.strip()]
        lines[split] = write_list(out / f"{split}.txt", rows[::len(rows) // n][:n])
    return lines


def overrides(digits_dir, lists, out_dir, name):
    extra = RECIPES[name].get("overrides")
    return [*(extra(out_dir) if extra else []),
            f"TRAIN.data_dir={digits_dir}", f"TRAIN.file_list={lists['train']}",
            f"VALID.data_dir={digits_dir}", f"VALID.file_list={lists['val']}",
            "classes_num=10", "epochs=1", f"model_save_dir={out_dir}",   # allowed
            "TRAIN.batch_size=16",                                        # tiny data
            "TRAIN.num_workers=0", "VALID.num_workers=0", "cpu_threads=1",  # speed
            *([] if name == EVAL_RECIPE else ["use_static_eval=False"])]


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_at_224_loads_and_its_training_batches_are_normalised(name, digits_dir, tiny_lists,
                                                                     tmp_path):
    path = tmp_path / f"{name}.yaml"
    path.write_text(recipe_text(name))
    cfg = load_config(str(path), overrides(digits_dir, tiny_lists, tmp_path, name))
    loader, dataset, _ = build_dataloader(cfg.TRAIN, "TRAIN", cfg.classes_num, train=True)
    images, labels = next(iter(loader))[:2]
    assert list(images.shape) == [16, 3, 224, 224] and str(images.dtype).endswith("float32")
    assert np.isfinite(images.numpy()).all() and labels.shape[0] == 16


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_one_epoch_through_the_train_path(name, digits_dir, tiny_lists, tmp_path,
                                                        monkeypatch, capsys):
    from ppcls.engine.train import train
    counted = RECIPES[name].get("counts")
    calls = []
    if counted:                 # count the operator's calls in the training path
        table = mix_module.MIX_OPS if counted in mix_module.MIX_OPS else transforms_module.OPS
        base = table[counted]

        class Counting(base):
            def __call__(self, *args):
                calls.append(1)
                return base.__call__(self, *args)
        monkeypatch.setitem(table, counted, Counting)
    path = tmp_path / f"{name}.yaml"
    path.write_text(recipe_text(name, size=32, resize_short=32))
    cfg = load_config(str(path), overrides(digits_dir, tiny_lists, tmp_path / "out", name))
    result = train(cfg)                                       # what tools/train.py runs
    log = capsys.readouterr().out
    assert 0.0 <= result["best_top1"] <= 1.0 and "END epoch:0   valid top1" in log
    arch = cfg.ARCHITECTURE.name
    assert os.path.isfile(tmp_path / "out" / arch / "0" / "ppcls.pdparams")
    assert "note: total_images is 1281167 but TRAIN lists 32 images" in log
    for note in RECIPES[name].get("notes", ()):
        assert note in log
    if counted:
        per_batch = counted in mix_module.MIX_OPS
        assert len(calls) >= (2 if per_batch else 32), f"{counted} ran {len(calls)} times"
    if name == EVAL_RECIPE:     # and tools/eval.py once, on the best model, oneDNN evaluation
        from ppcls.engine.evaluate import run_eval
        ev = load_config(str(path), overrides(digits_dir, tiny_lists, tmp_path / "out", name)
                         + [f"pretrained_model={tmp_path / 'out' / arch / 'best_model' / 'ppcls'}"])
        ev["mode"] = "valid"
        metrics = run_eval(ev)
        assert metrics["top1"] == pytest.approx(result["last"]["top1"], abs=1e-6)
        assert metrics["num_samples"] == 16


def test_a_bad_operator_parameter_is_one_error_line_with_exit_code_2(tmp_path):
    text = release_recipe(after_normalize=op("Cutout", n_holes=-1, length=112))
    path = tmp_path / "ResNet50_Cutout.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", str(path),
                           "-o", "classes_num=10", "-o", "epochs=1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "TRAIN.transforms.4.Cutout" in lines[0] and "n_holes must be an integer >= 0" in lines[0]
    assert "Traceback" not in proc.stderr

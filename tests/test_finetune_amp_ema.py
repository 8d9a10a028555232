"""What users do next: fine-tuning (new classifier, lrp, freeze_bn), fixed lists for their own
folder, AMP (plumbing on CPU, loss-scaling state across resume), EMA and gradient accumulation."""
import json
import os

import cv2
import numpy as np
import paddle
import pytest

import ppcls.engine.amp as amp_mod
from ppcls.data import ClassificationDataset, class_names, read_label_list
from ppcls.engine import finetune
from ppcls.engine.ema import ModelEMA
from ppcls.engine.train import train
from ppcls.modeling import build_model
from ppcls.utils import checkpoint as ckpt
from ppcls.engine.recipe import load_config
from ppcls.utils.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def weights(prefix):
    return ckpt.load_params_file(prefix)


def state_json(prefix):
    with open(prefix + ".state.json") as f:
        return json.load(f)


# ---------------------------------------------------------------------------- the classifier
@pytest.mark.parametrize("name,class_dim", [("DLA46_c", 7), ("MobileNetV2", 7),
                                            ("ReXNet_lite_1_0", 1024)])
def test_classifier_is_found_generically(name, class_dim):
    """The generic rule picks exactly the keys whose shape depends on the class count (probed
    by building the model twice), and the converter's Rules.head is among them. ReXNet-lite at
    1024 classes is the trap: its pre-classifier 1x1 conv also has 1024 outputs."""
    from ppcls.convert.core import rules_for
    a = build_model(name, class_dim=class_dim)
    b = build_model(name, class_dim=class_dim + 1)
    sa, sb = a.state_dict(), b.state_dict()
    probed = sorted(k for k in sa if list(sa[k].shape) != list(sb[k].shape))
    assert sorted(finetune.classifier_keys(a, class_dim)) == probed
    assert rules_for(name).head in probed


def test_a_classifier_keys_hook_wins_and_a_missing_head_is_one_clear_error():
    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.body = paddle.nn.Linear(4, 3)
            self.cls = paddle.nn.Linear(3, 3)

        def classifier_keys(self):
            return ["body.weight", "body.bias"]

    assert finetune.classifier_keys(Net(), 3) == ["body.weight", "body.bias"]
    with pytest.raises(ckpt.CheckpointError, match="classifier_keys"):
        finetune.classifier_keys(paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3)), 10)


def test_pretrained_with_another_class_count_reinitialises_only_the_head(tmp_path, capsys):
    from ppcls.utils.logger import setup_logger
    setup_logger()
    paddle.seed(1)
    src = build_model("ResNet18", class_dim=7)
    path = str(tmp_path / "src.pdparams")
    paddle.save(src.state_dict(), path)
    paddle.seed(2)
    dst = build_model("ResNet18", class_dim=5)
    fresh_head = {k: v.numpy().copy() for k, v in dst.state_dict().items() if k.startswith("fc.")}
    report = finetune.load_pretrained_for_finetune(dst, path, 5)
    out = capsys.readouterr().out
    assert sorted(k for k, _ in report["reinitialised"]) == ["fc.bias", "fc.weight"]
    assert "fc.weight (shape [512, 7] in the file, [512, 5] in the model: another class count)" in out
    s, d = src.state_dict(), dst.state_dict()
    for k in d:
        if k in fresh_head:
            np.testing.assert_array_equal(d[k].numpy(), fresh_head[k])
        else:
            np.testing.assert_array_equal(d[k].numpy(), s[k].numpy(), err_msg=k)
    # anything but the classifier must match, by name
    state = src.state_dict()
    state.pop("layer2.0.conv1.weight")
    state["layer3.0.bn1._mean"] = paddle.zeros([3])
    paddle.save(state, path)
    with pytest.raises(ckpt.CheckpointError) as e:
        finetune.load_pretrained_for_finetune(build_model("ResNet18", class_dim=5), path, 5)
    msg = str(e.value)
    assert "missing: layer2.0.conv1.weight" in msg
    assert "shape mismatch: layer3.0.bn1._mean file [3] vs model [256]" in msg
    assert "only the classifier may differ" in msg and "fc." not in msg


# ---------------------------------------------------------------------------- lrp / freeze_bn
def _one_step(model, images, labels, lr=0.1):
    opt = paddle.optimizer.Momentum(lr, momentum=0.9, parameters=model.parameters(),
                                    weight_decay=paddle.regularizer.L2Decay(1e-3))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    loss = paddle.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    opt.step()
    opt.clear_grad()
    after = {k: v.numpy() for k, v in model.state_dict().items()}
    return {k: after[k] - before[k] for k in before}, opt


def test_lrp_scales_the_pretrained_layers_and_zero_freezes_them():
    images = paddle.rand([8, 3, 32, 32])
    labels = paddle.arange(8) % 5
    deltas = {}
    for lrp in (1.0, 0.25, 0.0):
        paddle.seed(3)
        model = build_model("ResNet18", class_dim=5)
        head = finetune.classifier_keys(model, 5)
        if lrp != 1.0:
            finetune.apply_lrp(model, lrp, head)
        deltas[lrp], opt = _one_step(model, images, labels)
    trainable = [n for n, p in build_model("ResNet18", class_dim=5).named_parameters()
                 if not p.stop_gradient]
    for k in trainable:
        full, quarter, frozen = deltas[1.0][k], deltas[0.25][k], deltas[0.0][k]
        if k.startswith("fc."):                      # the classifier keeps the full rate
            np.testing.assert_allclose(quarter, full, rtol=1e-4, atol=2e-7, err_msg=k)
            assert np.abs(frozen).max() > 0
        else:                                         # first Momentum step: delta = lr * (g + wd p)
            np.testing.assert_allclose(quarter, 0.25 * full, rtol=1e-4, atol=2e-7, err_msg=k)
            assert not frozen.any(), f"{k} moved with lrp 0 (update or weight decay)"
    # frozen parameters get no optimizer state at all
    velocity = [k for k in ckpt.optimizer_state_for_saving(opt, model) if "velocity" in k]
    assert velocity and all(k.startswith("fc.") for k in velocity)


def test_finetune_run_with_lrp0_and_freeze_bn_changes_only_the_classifier(tiny_cfg, digits_dir,
                                                                         tmp_path, capsys):
    """End to end: a 7-class file into the 10-class demo model; only fc is re-initialised and
    trained; with freeze_bn the BN statistics and affine parameters stay as loaded. The log
    names the skipped keys, and class names from VALID.label_list reach the eval output."""
    paddle.seed(4)
    src = build_model("ResNet18", class_dim=7)
    pre = str(tmp_path / "pre" / "ppcls")
    os.makedirs(os.path.dirname(pre))
    paddle.save(src.state_dict(), pre + ".pdparams")
    cfg = tiny_cfg(n_train=64, n_val=30, extra=[
        "epochs=1", f"pretrained_model={pre}", "lrp=0", "freeze_bn=True", "print_interval=100",
        f"VALID.label_list={os.path.join(digits_dir, 'label_list.txt')}"])
    train(cfg)
    out = capsys.readouterr().out
    assert "classifier re-initialised, 2 key(s) not loaded" in out
    assert "fc.weight (shape [512, 7] in the file, [512, 10] in the model" in out
    assert "valid per-class top1: 0 digit_0 " in out
    after = weights(os.path.join(cfg.model_save_dir, "ResNet18", "0", "ppcls"))
    before = src.state_dict()
    for k, v in after.items():
        if k.startswith("fc."):
            assert v.shape[-1] == 10
        else:
            np.testing.assert_array_equal(v, before[k].numpy(), err_msg=k)


def test_finetune_options_are_checked_at_load_time(tiny_cfg):
    bad = [(["lrp=0.1"], "lrp: scales the learning rate of pretrained layers"),
           (["ema_decay=1.0"], "ema_decay: must be < 1"),
           (["amp_level=O3"], "amp_level: must be one of"),
           (["accum_steps=3"], "accum_steps: TRAIN.batch_size=32 is not divisible by accum_steps=3"),
           (["lrp=-1"], "lrp: must be >= 0")]
    for extra, msg in bad:
        with pytest.raises(ConfigError, match=msg.replace(".", r"\.").replace("(", r"\(")):
            tiny_cfg(extra=extra)


# ---------------------------------------------------------------------------- accumulation
def test_accumulating_two_micro_batches_equals_one_batch_of_twice_the_size(tiny_cfg, tmp_path):
    """TRAIN.batch_size=32 with accum_steps=2 (micro-batches of 16) against plain batches of 32,
    64 images = 2 optimizer steps. freeze_bn puts BN in eval mode, so each sample's gradient
    does not depend on the others in its batch (with batch statistics a micro-batch of 16 would
    normalise differently from a batch of 32 and the runs could not agree). The second run also
    asks for AMP, which on CPU falls back to float32 with a warning."""
    common = ["epochs=1", "validate=False", "freeze_bn=True", "LEARNING_RATE.params.lr=0.05"]
    one = tiny_cfg(n_train=64, extra=common)
    train(one)
    two = tiny_cfg(n_train=64, extra=common + ["accum_steps=2", "use_amp=True", "amp_level=O2",
                                               f"model_save_dir={tmp_path / 'accum'}"])
    train(two)
    a = os.path.join(one.model_save_dir, "ResNet18", "0", "ppcls")
    b = os.path.join(two.model_save_dir, "ResNet18", "0", "ppcls")
    wa, wb = weights(a), weights(b)
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=1e-4, atol=2e-6, err_msg=k)
    # not trivially equal: four plain steps at batch 16 end elsewhere
    small = tiny_cfg(n_train=64, extra=common + ["TRAIN.batch_size=16",
                                                 f"model_save_dir={tmp_path / 'small'}"])
    train(small)
    wc = weights(os.path.join(small.model_save_dir, "ResNet18", "0", "ppcls"))
    assert max(np.abs(wc[k] - wa[k]).max() for k in wa) > 100 * 2e-6
    assert state_json(a)["global_step"] == state_json(b)["global_step"] == 2
    assert "amp" not in state_json(b)                 # float32 fallback: nothing to restore


# ---------------------------------------------------------------------------- AMP + EMA
def test_amp_on_cpu_is_a_clear_float32_fallback():
    plan = amp_mod.resolve_amp(True, "O1", on_gpu=False)
    ok, why = amp_mod.probe_cpu_bfloat16()
    assert plan.enabled == ok
    if not ok:
        assert plan.reason == why and why
    assert not amp_mod.resolve_amp(False, "O1", on_gpu=False).enabled


def _cpu_scaler(**kw):
    """Paddle only enables GradScaler on GPU/XPU places; its arithmetic (scale, unscale, inf
    check, skip, scale update) runs on CPU, so the test lifts that guard while constructing."""
    import paddle.amp.grad_scaler as gs

    class Place:
        def is_gpu_place(self):
            return True

    class Tracer:
        _expected_place = Place()

    real = gs._dygraph_tracer
    gs._dygraph_tracer = lambda: Tracer()
    try:
        return amp_mod.GradScaler(enable=True, **kw)
    finally:
        gs._dygraph_tracer = real


@pytest.fixture
def forced_cpu_amp(monkeypatch):
    """float16 'AMP' on CPU: auto_cast is a no-op there (float32 math) but the loss scaler runs
    for real, so its state can be checked across a resume."""
    from paddle.amp.auto_cast import amp_global_state
    saved = amp_global_state().amp_dtype
    monkeypatch.setattr(amp_mod, "resolve_amp",
                        lambda use, level, on_gpu: amp_mod.AmpPlan(True, "float16", level, True))
    monkeypatch.setattr(amp_mod, "build_scaler",
                        lambda: _cpu_scaler(init_loss_scaling=1024.0, incr_every_n_steps=3))
    yield
    amp_global_state().amp_dtype = saved


def test_loss_scaler_skips_overflow_steps_and_lowers_the_scale(forced_cpu_amp):
    amp = amp_mod.Amp(amp_mod.resolve_amp(True, "O1", False))
    lin = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.Momentum(0.1, parameters=lin.parameters())
    scales = []
    for i in range(4):
        with amp.autocast():
            loss = lin(paddle.rand([4, 3])).mean()
        amp.scale(loss).backward()
        if i == 1:
            lin.weight.grad.set_value(paddle.full_like(lin.weight.grad, float("inf")))
        w = lin.weight.numpy().copy()
        stepped = amp.step(opt)
        opt.clear_grad()
        assert stepped == (i != 1) and np.array_equal(w, lin.weight.numpy()) == (i == 1)
        scales.append(amp.state_dict()["scaler"]["scale"])
    assert scales == [1024.0, 512.0, 512.0, 512.0] and amp.overflow_steps == 1


def test_o2_resume_casts_the_float32_checkpoint_to_the_weights_dtype():
    """Under O2 the weights are float16 (on GPU) while checkpoints are float32; Paddle's
    set_value refuses a dtype change, so the engine casts first (float16 weights made by hand
    here, since decorate leaves CPU models in float32)."""
    lin = paddle.nn.Linear(3, 2)
    lin.to(dtype="float16")
    state = {k: np.full(v.shape, 0.5, "float32") for k, v in lin.state_dict().items()}
    with pytest.raises(Exception, match="dtype"):
        lin.set_state_dict(state)
    o2 = amp_mod.Amp(amp_mod.AmpPlan(True, "float16", "O2", True))
    o2.scaler = None
    lin.set_state_dict(o2.fit_state(lin, state))
    assert lin.weight.dtype == paddle.float16 and (lin.weight.numpy() == 0.5).all()


def test_ema_follows_the_formula():
    paddle.seed(5)
    model, copy = paddle.nn.Linear(3, 2), paddle.nn.Linear(3, 2)
    ema = ModelEMA(model, copy, decay=0.5)
    expected = model.weight.numpy().astype(np.float64)
    for t in range(4):
        model.weight.set_value(paddle.rand([3, 2]))
        ema.update()
        d = min(0.5, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * model.weight.numpy()
    np.testing.assert_allclose(copy.weight.numpy(), expected, rtol=1e-6)
    assert ema.updates == 4


def test_ema_and_loss_scaling_are_saved_and_restored_on_resume(tiny_cfg, tmp_path, forced_cpu_amp):
    """Two epochs straight, and one epoch resumed from the first checkpoint: same raw weights,
    same EMA weights, same loss-scaling state (the scale grows x2 every 3 finite steps: a
    resumed run that forgot it would end at a different scale)."""
    extra = ["epochs=2", "ema_decay=0.8", "use_amp=True", "print_interval=100",
             "use_static_eval=False"]
    full = tiny_cfg(n_train=64, n_val=30, extra=extra)       # 2 steps per epoch
    result = train(full)
    arch = os.path.join(full.model_save_dir, "ResNet18")
    s0, s1 = state_json(os.path.join(arch, "0", "ppcls")), state_json(os.path.join(arch, "1", "ppcls"))
    assert (s0["global_step"], s1["global_step"]) == (2, 4)
    assert (s0["ema_updates"], s1["ema_updates"]) == (2, 4)
    for s, steps in ((s0, 2), (s1, 4)):
        assert s["amp"]["scaler"]["scale"] == 1024.0 * 2 ** (steps // 3)
        assert s["amp"]["scaler"]["incr_count"] == steps % 3
    resumed = tiny_cfg(n_train=64, n_val=30, extra=extra + [
        f"checkpoints={os.path.join(arch, '0', 'ppcls')}", f"model_save_dir={tmp_path / 'resumed'}"])
    train(resumed)
    arch_r = os.path.join(tmp_path, "resumed", "ResNet18")
    r1 = state_json(os.path.join(arch_r, "1", "ppcls"))
    assert r1["amp"] == s1["amp"] and r1["ema_updates"] == s1["ema_updates"]
    for name in ("ppcls", "ppcls_ema"):
        a = weights(os.path.join(arch, "1", name))
        b = weights(os.path.join(arch_r, "1", name))
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")
    ema_w, raw_w = weights(os.path.join(arch, "1", "ppcls_ema")), weights(os.path.join(arch, "1", "ppcls"))
    assert any(not np.allclose(ema_w[k], raw_w[k]) for k in raw_w)
    # best_model: ppcls = the weights that scored best, the other set alongside
    best = state_json(os.path.join(arch, "best_model", "ppcls"))
    assert best["best_source"] == result["best_source"] in ("raw", "ema")
    other = "raw" if best["best_source"] == "ema" else "ema"
    epoch_dir = os.path.join(arch, str(best["best_epoch"]))
    won = weights(os.path.join(epoch_dir, "ppcls_ema" if best["best_source"] == "ema" else "ppcls"))
    lost = weights(os.path.join(epoch_dir, "ppcls" if best["best_source"] == "ema" else "ppcls_ema"))
    for k, v in weights(os.path.join(arch, "best_model", "ppcls")).items():
        np.testing.assert_array_equal(v, won[k])
    for k, v in weights(os.path.join(arch, "best_model", f"ppcls_{other}")).items():
        np.testing.assert_array_equal(v, lost[k])


# ---------------------------------------------------------------------------- your own folder
def _image_folder(root, counts):
    for name, n in counts.items():
        os.makedirs(root / name)
        for i in range(n):
            cv2.imwrite(str(root / name / f"{i:03d}.png"), np.full((8, 8, 3), i * 10, np.uint8))


def test_make_lists_writes_a_stratified_fixed_split(tmp_path, capsys):
    from tools.make_lists import main
    data = tmp_path / "flowers"
    counts = {"daisy": 20, "red rose": 9, "tulip": 1}
    _image_folder(data, counts)
    assert main([str(data), "--val_ratio", "0.2", "--seed", "3"]) == 0
    names = read_label_list(str(data / "label_list.txt"))
    assert names == {0: "daisy", 1: "red rose", 2: "tulip"}
    lists = {}
    for split in ("train", "val"):
        ds = ClassificationDataset(str(data), str(data / f"{split}_list.txt"), [], classes_num=3)
        lists[split] = ds.samples
    for label, (name, n) in enumerate(counts.items()):
        n_val = sum(1 for _, lab in lists["val"] if lab == label)
        n_train = sum(1 for _, lab in lists["train"] if lab == label)
        expected = min(max(int(round(n * 0.2)), 1 if n >= 2 else 0), n - 1)
        assert (n_train, n_val) == (n - expected, expected), name
    assert not set(lists["train"]) & set(lists["val"])
    assert len(lists["train"]) + len(lists["val"]) == sum(counts.values())
    first = (data / "val_list.txt").read_text()
    # fixed: the same seed gives the same split; existing lists are kept unless --force
    assert main([str(data), "--val_ratio", "0.2", "--seed", "3"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([str(data), "--val_ratio", "0.2", "--seed", "3", "--force"]) == 0
    assert (data / "val_list.txt").read_text() == first
    out = tmp_path / "lists"
    assert main([str(data), "--val_ratio", "0.2", "--seed", "4", "--out", str(out)]) == 0
    assert (out / "val_list.txt").read_text() != first
    # ImageFolder mode (no file list): the sub-folder names are the class names in eval output
    ds = ClassificationDataset(str(data), "", [], classes_num=3)
    assert class_names({"label_list": ""}, ds) == names


def test_the_transfer_demo_recipes_are_valid_and_scratch_needs_lrp_1():
    pre = load_config(os.path.join(ROOT, "configs/quick_start/pretrain_digits_0_4.yaml"))
    ft_path = os.path.join(ROOT, "configs/quick_start/finetune_digits_5_9.yaml")
    ft = load_config(ft_path)
    assert pre.classes_num == ft.classes_num == 5 and ft.lrp < 1.0
    # the fine-tune recipe starts from the pretrain recipe's best model
    assert os.path.normpath(ft.pretrained_model) == os.path.normpath(os.path.join(
        pre.model_save_dir, pre.ARCHITECTURE.name, "best_model", "ppcls"))
    with pytest.raises(ConfigError, match="lrp"):
        load_config(ft_path, ["pretrained_model="])
    load_config(ft_path, ["pretrained_model=", "lrp=1.0"])

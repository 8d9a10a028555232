"""SSLD distillation (use_distillation: True, ARCHITECTURE.name <Teacher>_distill_<Student>):
name parsing, the combined layer, the losses against hand computations, the recipe checks, the
weights each form of pretrained_model loads, and short runs that train, evaluate, export and
resume the student (tiny digits, 32x32)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppcls.engine import distill
from ppcls.engine.evaluate import run_eval
from ppcls.engine.recipe import load_config, model_from_config
from ppcls.engine.train import train
from ppcls.modeling import build_model
from ppcls.modeling.distill_loss import DistillationLoss, kl_loss, ssld_loss
from ppcls.modeling.distillation import (DistillNameError, DistillationModel, split_distill_name,
                                         student_state, trained_part)
from ppcls.utils import checkpoint as ckpt
from ppcls.utils.cli import run_cli
from ppcls.utils.config import ConfigError
from ppcls.utils.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTILL_CFG = os.path.join(ROOT, "configs/quick_start/DLA34_distill_DLA46_c_digits.yaml")
STUDENT_CFG = os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")
PAIR = "ResNet18_distill_DLA46_c"       # small enough for tests at 32x32


def weights(prefix):
    return ckpt.load_params_file(prefix)


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A ResNet18 teacher's weights (10 classes) as a training run would save them."""
    paddle.seed(1)
    model = build_model("ResNet18", class_dim=10)
    prefix = str(tmp_path_factory.mktemp("teacher") / "ppcls")
    paddle.save(model.state_dict(), prefix + ".pdparams")
    return prefix


def distill_cfg(tiny_cfg, teacher, extra=(), n_train=64, n_val=40):
    return tiny_cfg(n_train=n_train, n_val=n_val, extra=[
        f"ARCHITECTURE.name={PAIR}", "use_distillation=True", f"pretrained_model={teacher}",
        "print_interval=100", *extra])


# ---------------------------------------------------------------------------- names
def test_names_split_by_the_registry_not_by_position():
    assert split_distill_name("DLA102_distill_DLA34") == ("DLA102", "DLA34")
    assert split_distill_name("ReXNet_1_0_distill_DLA46_c") == ("ReXNet_1_0", "DLA46_c")
    assert split_distill_name("DLA46_c_distill_DLA46_c") == ("DLA46_c", "DLA46_c")
    known = {"A", "B", "C", "A_distill_B", "B_distill_C"}
    assert split_distill_name("A_distill_B", known) == ("A", "B")
    with pytest.raises(DistillNameError, match=r"2 ways .*teacher A, student B_distill_C.*"
                                               r"teacher A_distill_B, student C"):
        split_distill_name("A_distill_B_distill_C", known)
    # release/2.0's own pairs name models this suite does not have: both named, with hints
    with pytest.raises(DistillNameError) as e:
        split_distill_name("ResNet50_vd_distill_MobileNetV3_large_x1_0")
    msg = str(e.value)
    assert "teacher 'ResNet50_vd' is not a registered model" in msg
    assert "student 'MobileNetV3_large_x1_0' is not a registered model" in msg
    assert "did you mean ResNet50" in msg and "MobileNetV2" in msg
    with pytest.raises(DistillNameError, match=r"the student 'dla46_c' .*did you mean DLA46_c"):
        split_distill_name("DLA34_distill_dla46_c")
    assert isinstance(e.value, UserError)


DISTILL_ERRORS = [
    (["ARCHITECTURE.name=ResNet50_vd_distill_MobileNetV3_large_x1_0"],
     r"ARCHITECTURE.name: .*teacher 'ResNet50_vd' is not a registered model"),
    (["use_distillation=False"], r"ARCHITECTURE.name: DLA34_distill_DLA46_c names a .*set "
                                 r"use_distillation: True"),
    (["ARCHITECTURE.name=DLA46_c"], r"use_distillation: needs ARCHITECTURE.name "
                                    r"<Teacher>_distill_<Student>"),
    (["distillation_loss.function=JS"], r"distillation_loss.function: must be one of"),
    (["distillation_loss.temprature=2"], r"distillation_loss.temprature: unknown key; did you "
                                         r"mean 'temperature'"),
    (["distillation_loss.function=KL", "distillation_loss.temperature=0"],
     r"distillation_loss.temperature: must be > 0"),
    (["distillation_loss.temperature=4"], r"temperature: applies to function: KL only"),
    (["distillation_loss.label_weight=1"], r"label_weight: must be < 1"),
    (["distillation_loss.label_weight=-0.1"], r"label_weight: must be >= 0"),
    (["pretrained_model=[a, b, c]"], r"pretrained_model: expected a weights path"),
    (["pretrained_model=[a, 3]"], r"pretrained_model: expected a weights path"),
    (["lrp=0.1"], r"lrp: .*names no student weights"),
]
PLAIN_ERRORS = [       # the plain student recipe given distillation keys
    (["pretrained_model=[t, s]"],
     r"pretrained_model: a \[teacher, student\] list is for distillation recipes"),
    (["distillation_loss.function=KL"], r"distillation_loss: only used when use_distillation is True"),
    (["ARCHITECTURE.teacher_params.x=1"],
     r"ARCHITECTURE.teacher_params: only a distillation recipe has a teacher"),
    (["ARCHITECTURE.name=DLA34_distill_DLA46_c"], r"names a <Teacher>_distill_<Student> pair"),
]


@pytest.mark.parametrize("recipe, overrides, message",
                         [(DISTILL_CFG, o, m) for o, m in DISTILL_ERRORS]
                         + [(STUDENT_CFG, o, m) for o, m in PLAIN_ERRORS])
def test_recipe_errors_name_the_key(recipe, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(recipe, overrides)


def test_the_demo_recipe_and_its_pretrained_forms_load():
    cfg = load_config(DISTILL_CFG)
    assert distill.pair_names(cfg) == ("DLA34", "DLA46_c")
    assert distill.split_pretrained(cfg) == ("./output/DLA34/best_model/ppcls", "")
    cfg = load_config(DISTILL_CFG, ["pretrained_model=[t, s]", "lrp=0.1"])
    assert distill.split_pretrained(cfg) == ("t", "s") and distill.finetune_weights(cfg) == "s"
    assert distill.split_pretrained(load_config(DISTILL_CFG, ["pretrained_model=[t]"])) == ("t", "")
    assert distill.split_pretrained(load_config(DISTILL_CFG, ["pretrained_model=['', s]"])) == ("", "s")
    # release/2.0 ignores ls_epsilon in a distillation recipe; here the run says it has no effect
    import io
    import logging
    from ppcls.engine.recipe import criterion_from_config
    log, text = logging.getLogger("test_distillation"), io.StringIO()
    log.addHandler(logging.StreamHandler(text))
    log.setLevel(logging.INFO)
    criterion_from_config(load_config(DISTILL_CFG, ["ls_epsilon=0.1"]), log)
    out = text.getvalue()
    assert "distillation loss: SSLD (release/2.0" in out and "labels unused" in out
    assert "ls_epsilon=0.1 has no effect: the distillation loss uses no labels" in out
    # teacher_params reach the teacher only, params the student only
    cfg = load_config(DISTILL_CFG, ["ARCHITECTURE.teacher_params.nope=1"])
    with pytest.raises(UserError, match=r"ARCHITECTURE.teacher_params does not fit DLA34"):
        model_from_config(cfg)


# ---------------------------------------------------------------------------- the combined layer
def test_teacher_is_frozen_in_eval_mode_and_keys_are_teacher_and_student():
    from ppcls.optimizer import build_lr_scheduler, build_optimizer
    paddle.seed(0)
    model = DistillationModel(build_model("ResNet18", class_dim=10), build_model("DLA46_c", class_dim=10))
    keys = list(model.state_dict())
    assert all(k.startswith(("teacher.", "student.")) for k in keys)
    fresh = build_model("DLA46_c", class_dim=10)
    assert {k[len("student."):] for k in keys if k.startswith("student.")} == set(fresh.state_dict())
    assert all(p.stop_gradient for p in model.teacher.parameters())
    trainable = [n for n, p in model.student.named_parameters() if not p.stop_gradient]
    assert trainable == [n for n, p in fresh.named_parameters() if not p.stop_gradient]
    model.train()
    assert not any(layer.training for layer in [model.teacher, *model.teacher.sublayers()])
    assert all(layer.training for layer in [model.student, *model.student.sublayers()])
    # paddle.DataParallel.train() sets every sublayer's flag: the forward puts the teacher back
    for layer in model.sublayers():
        layer.training = True
    x = paddle.randn([4, 3, 32, 32])
    before = {k: v.numpy().copy() for k, v in model.teacher.state_dict().items()}
    cfg = load_config(DISTILL_CFG, ["LEARNING_RATE.params.warmup_epoch=0"])
    sched = build_lr_scheduler(cfg.LEARNING_RATE, 10, cfg.epochs)
    opt = build_optimizer(cfg.OPTIMIZER, sched, model.parameters())
    student_before = model.student.state_dict()["fc.weight"].numpy().copy()
    for _ in range(2):
        teacher_out, student_out = model(x)
        assert teacher_out.stop_gradient and not student_out.stop_gradient
        loss, scored = DistillationLoss()((teacher_out, student_out), None)
        assert scored is student_out
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert not model.teacher.training
    for k, v in model.teacher.state_dict().items():      # weights and BN statistics unchanged
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    assert not np.array_equal(model.student.state_dict()["fc.weight"].numpy(), student_before)
    opt_keys = ckpt.optimizer_state_for_saving(opt, model)
    assert any(k.startswith("student.") for k in opt_keys)
    assert not any(k.startswith("teacher.") for k in opt_keys)
    # the teacher's train-mode output is its eval-mode function; eval mode returns the student's
    model.eval()
    np.testing.assert_allclose(model.teacher(x).numpy(), teacher_out.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x).numpy(), model.student(x).numpy(), rtol=1e-6)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert student_state(state).keys() == model.student.state_dict().keys()
    assert student_state(student_state(state)).keys() == model.student.state_dict().keys()
    # what multi-process training averages over the ranks (BN statistics): the student's only
    assert trained_part(model) is model.student and trained_part(fresh) is fresh


def test_lrp_and_freeze_bn_act_on_the_student():
    from ppcls.engine.finetune import setup_finetune
    model = DistillationModel(build_model("ResNet18", class_dim=10), build_model("DLA46_c", class_dim=10))
    cfg = load_config(DISTILL_CFG, ["pretrained_model=[t, s]", "lrp=0.1", "freeze_bn=True"])
    head = setup_finetune(model, cfg)
    assert head == ["student.fc.weight", "student.fc.bias"]
    from ppcls.engine.finetune import bn_layers
    assert all(not m.training and all(p.stop_gradient for p in m.parameters())
               for m in bn_layers(model.student))
    scaled = 0
    for name, p in model.named_parameters():
        if name.startswith("teacher."):
            assert p.stop_gradient, name
        elif name in head:
            assert (p.optimize_attr or {}).get("learning_rate", 1.0) == 1.0, name
        elif not p.stop_gradient:                       # the student's convolutions
            assert p.optimize_attr["learning_rate"] == pytest.approx(0.1), name
            scaled += 1
    assert scaled > 10


# ---------------------------------------------------------------------------- losses
def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ce(z, y, eps=0.0):
    logp = np.log(_softmax(z))
    k = z.shape[1]
    target = np.full_like(z, eps / k)
    target[np.arange(len(y)), y] += 1 - eps
    return float(-(target * logp).sum(axis=1).mean())


LOGITS_S = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], np.float32)
LOGITS_T = np.array([[1.0, 0.0, -2.0], [-1.0, 2.5, 0.5]], np.float32)
LABELS = np.array([0, 2])


def test_default_loss_is_release_2_0_ssld_by_hand():
    s, t = _softmax(LOGITS_S.astype(np.float64)), _softmax(LOGITS_T.astype(np.float64))
    eps, classes = 1e-10, 3
    # release/2.0 JSDivLoss: element-wise cost * classes_num, mean over all N x C elements
    cost = (t * np.log((t + eps) / (s + eps)) * classes + s * np.log((s + eps) / (t + eps)) * classes) / 2
    expected = cost.mean()
    # = the batch mean of half the symmetric KL per sample
    half_sym_kl = 0.5 * ((t * np.log(t / s)).sum(1) + (s * np.log(s / t)).sum(1)).mean()
    assert expected == pytest.approx(half_sym_kl, rel=1e-9)
    got = float(ssld_loss(paddle.to_tensor(LOGITS_S), paddle.to_tensor(LOGITS_T)))
    assert got == pytest.approx(expected, rel=1e-5)
    # the default criterion: that loss, labels unused (any labels give the same value)
    crit = DistillationLoss()
    for labels in (LABELS, np.array([1, 1])):
        loss, _ = crit((paddle.to_tensor(LOGITS_T), paddle.to_tensor(LOGITS_S)), paddle.to_tensor(labels))
        assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(ssld_loss(paddle.to_tensor(LOGITS_S), paddle.to_tensor(LOGITS_S))) == pytest.approx(0, abs=1e-6)


def test_hinton_kl_with_temperature_and_label_weight_by_hand():
    T = 4.0
    pt, ps = _softmax(LOGITS_T / T), _softmax(LOGITS_S / T)
    kl = T * T * (pt * np.log(pt / ps)).sum(1).mean()
    got = float(kl_loss(paddle.to_tensor(LOGITS_S), paddle.to_tensor(LOGITS_T), T))
    assert got == pytest.approx(kl, rel=1e-5)
    crit = DistillationLoss("KL", temperature=T, label_weight=0.3)
    loss, _ = crit((paddle.to_tensor(LOGITS_T), paddle.to_tensor(LOGITS_S)), paddle.to_tensor(LABELS))
    assert float(loss) == pytest.approx(0.7 * kl + 0.3 * _ce(LOGITS_S, LABELS), rel=1e-5)


def test_ls_epsilon_applies_to_the_label_part_only_and_mixup_mixes_it():
    t, s, y = paddle.to_tensor(LOGITS_T), paddle.to_tensor(LOGITS_S), paddle.to_tensor(LABELS)
    ssld = float(ssld_loss(s, t))
    # label_weight 0: label smoothing cannot change the loss
    for eps in (0.0, 0.1):
        assert float(DistillationLoss(epsilon=eps)((t, s), y)[0]) == pytest.approx(ssld, rel=1e-6)
    loss = float(DistillationLoss(label_weight=0.5, epsilon=0.1)((t, s), y)[0])
    assert loss == pytest.approx(0.5 * ssld + 0.5 * _ce(LOGITS_S, LABELS, 0.1), rel=1e-5)
    assert loss != pytest.approx(0.5 * ssld + 0.5 * _ce(LOGITS_S, LABELS, 0.0), rel=1e-3)
    # Mixup/Cutmix: the label part is lam * CE(a) + (1 - lam) * CE(b); the distillation part is
    # on the (mixed) images the teacher saw
    yb, lam = np.array([1, 0]), 0.7
    mixed = float(DistillationLoss(label_weight=0.5, epsilon=0.1)(
        (t, s), y, (y, paddle.to_tensor(yb), lam))[0])
    label = lam * _ce(LOGITS_S, LABELS, 0.1) + (1 - lam) * _ce(LOGITS_S, yb, 0.1)
    assert mixed == pytest.approx(0.5 * ssld + 0.5 * label, rel=1e-5)


# ---------------------------------------------------------------------------- pretrained weights
def test_pretrained_forms_and_one_clear_error_for_a_missing_teacher(tiny_cfg, teacher_file, tmp_path,
                                                                    digits_dir, monkeypatch, capsys):
    paddle.seed(3)
    student = build_model("DLA46_c", class_dim=10)
    student_prefix = str(tmp_path / "student")
    paddle.save(student.state_dict(), student_prefix + ".pdparams")
    t_ref, s_ref = weights(teacher_file), weights(student_prefix)

    model = model_from_config(distill_cfg(tiny_cfg, teacher_file))

    def loaded(pretrained, resuming=False):
        cfg = distill_cfg(tiny_cfg, "", [f"pretrained_model={pretrained}"])
        distill.load_start_weights(model, cfg, resuming)
        return {k: v.numpy() for k, v in model.state_dict().items()}

    # the student-weights form last: the one model is reused
    for form in (teacher_file, f"[{teacher_file}]", f"[{teacher_file}, '']",
                 f"[{teacher_file}, {student_prefix}]"):
        state = loaded(form)
        for k, v in t_ref.items():
            np.testing.assert_array_equal(state["teacher." + k], v, err_msg=f"{form}: {k}")
        with_student = "student" in form
        assert np.array_equal(state["student.fc.weight"], s_ref["fc.weight"]) == with_student
    # no teacher: an error for a fresh run, fine when resuming (the checkpoint has the teacher)
    with pytest.raises(distill.DistillationError, match=r"names no teacher weights, so the teacher "
                                                        r"ResNet18 .*would be random"):
        loaded(f"['', {student_prefix}]")
    loaded(f"['', {student_prefix}]", resuming=True)
    missing = str(tmp_path / "nowhere" / "ppcls")
    with pytest.raises(distill.DistillationError, match=r"^pretrained_model \(the teacher, "
                                                        r"ResNet18\): weights file not found: "):
        loaded(missing)
    with pytest.raises(distill.DistillationError, match=r"the teacher, ResNet18\): .* does not fit"):
        loaded(student_prefix)
    # the CLI: one error line, exit code 2, nothing written
    from tools import train as train_tool
    out = tmp_path / "cli_out"
    monkeypatch.setattr(sys, "argv", [
        "train.py", "-c", DISTILL_CFG, "-o", f"pretrained_model={missing}", "-o", f"model_save_dir={out}",
        "-o", f"TRAIN.data_dir={digits_dir}", "-o", f"TRAIN.file_list={digits_dir}/train_list.txt",
        "-o", "validate=False", "-o", "cpu_threads=1", "-o", "TRAIN.num_workers=0"])
    with pytest.raises(SystemExit) as e:
        run_cli(train_tool.main)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: pretrained_model (the teacher, DLA34): weights file not found")
    assert not out.exists()


# ---------------------------------------------------------------------------- runs
def _assert_teacher_is(state, teacher):
    for k, v in teacher.items():
        np.testing.assert_array_equal(state["teacher." + k], v, err_msg=k)


def test_a_run_saves_the_student_and_eval_and_export_score_it(tiny_cfg, teacher_file, digits_dir,
                                                              tmp_path):
    # validation (raw and EMA, in the oneDNN predictor) after the last epoch only
    cfg = distill_cfg(tiny_cfg, teacher_file, ["epochs=2", "ema_decay=0.5", "valid_interval=2"])
    result = train(cfg)
    arch_dir = os.path.join(cfg.model_save_dir, PAIR)
    teacher = weights(teacher_file)
    student_keys = set(build_model("DLA46_c", class_dim=10).state_dict())
    assert result["best_epoch"] == 1
    for d in ("0", "1", "best_model"):
        combined = weights(os.path.join(arch_dir, d, "ppcls"))
        assert all(k.startswith(("teacher.", "student.")) for k in combined)
        _assert_teacher_is(combined, teacher)            # frozen: weights and BN statistics
        student = weights(os.path.join(arch_dir, d, "ppcls_student"))
        assert set(student) == student_keys
        for k, v in student.items():
            np.testing.assert_array_equal(v, combined["student." + k], err_msg=f"{d}: {k}")
        ema = weights(os.path.join(arch_dir, d, "ppcls_ema" if d != "best_model" or
                                   result["best_source"] == "raw" else "ppcls_raw"))
        _assert_teacher_is(ema, teacher)                 # the EMA averages the student only
    epoch1 = weights(os.path.join(arch_dir, "1", "ppcls"))
    ema1 = weights(os.path.join(arch_dir, "1", "ppcls_ema"))
    assert any(not np.allclose(ema1[k], epoch1[k]) for k in epoch1 if k.startswith("student."))
    opt = paddle.load(os.path.join(arch_dir, "1", "ppcls.pdopt"))
    assert any(k.startswith("student.") for k in opt) and not any(k.startswith("teacher.") for k in opt)
    # eval.py with the distillation recipe scores the student: the same numbers as the plain
    # student recipe evaluating ppcls_student, and as the validation that picked best_model
    best = os.path.join(arch_dir, "best_model", "ppcls")
    m_pair = run_eval(distill_cfg(tiny_cfg, best, ["use_static_eval=False"]))
    m_student = run_eval(tiny_cfg(n_train=64, n_val=40, extra=[
        "ARCHITECTURE.name=DLA46_c", f"pretrained_model={best}_student", "use_static_eval=False"]))
    assert m_pair["top1"] == m_student["top1"] == pytest.approx(result["best_top1"])
    assert m_pair["loss"] == pytest.approx(m_student["loss"], rel=1e-6)
    with pytest.raises(distill.DistillationError, match=r"evaluation and export score the student"):
        run_eval(distill_cfg(tiny_cfg, teacher_file))
    # export_model.py -c <distillation recipe> exports the student
    from ppcls.inference.export import paddle_predict_once
    from ppcls.cli.export_model import from_config, parser
    out = tmp_path / "inference"
    args = parser().parse_args([
        "-c", STUDENT_CFG, "-o", f"ARCHITECTURE.name={PAIR}", "-o", "use_distillation=True",
        "-o", f"pretrained_model={best}", "-o", f"save_inference_dir={out}",
        "-o", f"VALID.label_list={digits_dir}/label_list.txt"])
    from_config(args)
    student = build_model("DLA46_c", class_dim=10)
    ckpt.load_pretrained(student, best + "_student")
    student.eval()
    x = np.random.RandomState(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    expected = paddle.nn.functional.softmax(student(paddle.to_tensor(x))).numpy()
    np.testing.assert_allclose(paddle_predict_once(str(out), x), expected, rtol=1e-4, atol=1e-5)


def test_resume_auto_from_an_epoch_checkpoint_equals_an_uninterrupted_run(tiny_cfg, teacher_file,
                                                                          tmp_path):
    full = distill_cfg(tiny_cfg, teacher_file, ["epochs=2", "validate=False"])
    train(full)
    arch = os.path.join(full.model_save_dir, PAIR)
    # as if killed during epoch 1: only epoch 0 was saved. No teacher weights are named: the
    # checkpoint holds the teacher
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(os.path.join(arch, "0"), resumed_dir / PAIR / "0")
    train(distill_cfg(tiny_cfg, "", ["epochs=2", "validate=False", "resume=auto",
                                     f"model_save_dir={resumed_dir}"]))
    for name in ("ppcls", "ppcls_student"):
        a = weights(os.path.join(arch, "1", name))
        b = weights(str(resumed_dir / PAIR / "1" / name))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")
    state = ckpt.load_checkpoint(str(resumed_dir / PAIR / "1" / "ppcls"))[2]
    assert state["epoch"] == 1 and state["arch"] == PAIR


def test_mixup_with_hinton_kl_a_label_part_and_accumulation_trains(tiny_cfg, teacher_file, capsys):
    cfg = distill_cfg(tiny_cfg, teacher_file, [
        "epochs=1", "validate=False", "use_mix=True", "TRAIN.mix=[{MixupOperator: {alpha: 0.2}}]",
        "ls_epsilon=0.1", "distillation_loss.function=KL", "distillation_loss.temperature=2",
        "distillation_loss.label_weight=0.5", "accum_steps=2"])
    train(cfg)
    state = ckpt.load_checkpoint(os.path.join(cfg.model_save_dir, PAIR, "0", "ppcls"))
    assert state[2]["global_step"] == 2                 # 4 micro-batches of 16, 2 optimizer steps
    assert all(np.isfinite(v).all() for v in state[0].values())
    _assert_teacher_is(state[0], weights(teacher_file))
    assert "distillation loss: KL at temperature 2 x 0.5 + cross-entropy x 0.5" in capsys.readouterr().out


def test_a_release_2_0_distillation_recipe_runs_through_tools_train(digits_dir, teacher_file,
                                                                    tmp_path):
    """release/2.0's key layout (configs/quick_start/R50_vd_distill_MV3_large_x1_0.yaml there),
    with this suite's models, the digits and one short epoch."""
    lists = {}
    for split, n in (("train", 64), ("val", 40)):
        with open(os.path.join(digits_dir, f"{split}_list.txt")) as f:
            lines = [line for line in f if line.strip()]
        lists[split] = tmp_path / f"{split}.txt"
        lists[split].write_text("".join(lines[:: len(lines) // n][:n]))
    from test_paddleclas_recipes import release_recipe
    recipe = tmp_path / "ResNet18_distill_DLA46_c.yaml"
    recipe.write_text(release_recipe(PAIR, top="use_distillation: True\n", epochs=1, size=32,
                                     resize_short=36, pretrained_model=f'"{teacher_file}"'))
    overrides = [f"TRAIN.data_dir={digits_dir}", f"TRAIN.file_list={lists['train']}",
                 f"VALID.data_dir={digits_dir}", f"VALID.file_list={lists['val']}",
                 "classes_num=10", f"model_save_dir={tmp_path / 'output'}",
                 "TRAIN.batch_size=32", "VALID.batch_size=20",          # the 64 images
                 "TRAIN.num_workers=0", "VALID.num_workers=0", "cpu_threads=1"]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools/train.py"), "-c", str(recipe),
                        *[a for o in overrides for a in ("-o", o)]],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert f"distillation: teacher ResNet18 loaded from {teacher_file}" in log
    assert "END epoch:0   valid top1:" in log
    best = tmp_path / "output" / PAIR / "best_model"
    assert ckpt.is_complete(str(best)) and (best / "ppcls_student.pdparams").is_file()

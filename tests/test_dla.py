"""DLA: parity with the official ucbdrive/dla models, counts, converter, training, input sizes.

Reference figures come from shared/reference/ARCHITECTURES.md: parameters of the "params without
dead DLA projections" column (our port does not build the dead ``project`` layers), and GMACs
of the official model. The official forward still *runs* the dead projections, so the table's
GMACs equal our MACs plus the MACs of those 1x1 convs; the test computes the latter from the
fixture's own tensor list and checks the sum at the table's 3 decimals.
"""
import os
import re
import subprocess

import numpy as np
import paddle
import pytest

from parity import assert_logits_close, load_fixture, official_state_dict, run_parity
from ppcls.convert import ConversionError, convert_state_dict
from ppcls.convert.dla import DEAD_PROJECTION, DLA_LEVELS
from ppcls.modeling import build_model, list_models, model_info
from ppcls.modeling.architectures.dla import DLA_CONFIGS
from ppcls.analysis.flops import count_macs, count_params

# fixture, our name, params without dead projections, GMACs of the official model (224)
CASES = [
    ("dla34", "DLA34", 15_742_104, 3.073),
    ("dla46_c", "DLA46_c", 1_301_400, 0.576),
    ("dla46x_c", "DLA46x_c", 1_068_440, 0.534),
    ("dla60x_c", "DLA60x_c", 1_319_832, 0.585),
    ("dla60", "DLA60", 22_036_632, 4.313),
    ("dla60x", "DLA60x", 17_352_344, 3.594),
    ("dla102", "DLA102", 33_268_888, 7.293),
    # dla102x2 before dla102x: the official dla102x2() leaks cardinality 64 into later models
    ("dla102x2", "DLA102x2", 41_282_200, 9.412),
    ("dla102x", "DLA102x", 26_309_272, 5.976),
    ("dla169", "DLA169", 53_389_720, 11.725),
]
# DLA102x2 / DLA102x as built by the parity test, reused by the cardinality test (the other
# parity models are released at once: together they would hold ~1 GB).
_MODELS = {}
_KEEP = ("DLA102x2", "DLA102x")


def _model(arch):
    if arch not in _MODELS:
        _MODELS[arch] = build_model(arch)
    return _MODELS[arch]


def _paddle_name(name):
    return re.sub(r"running_mean$", "_mean", re.sub(r"running_var$", "_variance", name))


def official_dead_keys(fixture):
    """Keys of ``project`` layers owned by a tree with more than one level, found from the
    fixture's names alone (independently of the converter's rule): such a tree's ``tree1`` is
    itself a tree, so ``<tree>.tree1.tree1.*`` keys exist."""
    names = [n for n, _ in fixture["params"]]
    dead = []
    for name in names:
        m = re.match(r"(.*)\.project\.", name)
        if m and any(k.startswith(m.group(1) + ".tree1.tree1.") for k in names):
            dead.append(name)
    return dead


def dead_projection_macs(fixture, input_size=224):
    """MACs the official forward spends in the dead 1x1 projections: each runs on the
    downsampled input of its level, i.e. at that level's output resolution."""
    shapes = dict((n, s) for n, s in fixture["params"])
    total = 0
    for name in official_dead_keys(fixture):
        if name.endswith(".0.weight"):
            level = int(re.match(r"level(\d)", name).group(1))
            side = input_size // 2 ** level
            total += int(np.prod(shapes[name])) * side * side
    return total


@pytest.mark.parametrize("fixture_name, arch, params_ref, gmacs_ref", CASES,
                         ids=[c[1] for c in CASES])
def test_parity_counts_and_conversion(fixture_name, arch, params_ref, gmacs_ref):
    model, ours, expected, report = run_parity(fixture_name, arch)
    if arch in _KEEP:
        _MODELS[arch] = model
    assert_logits_close(ours, expected)

    fixture = load_fixture(fixture_name)
    dead = official_dead_keys(fixture)
    assert dead, "every DLA has at least one multi-level tree with a projection"
    # The converter reports exactly the dead keys as dropped, nothing else...
    assert report["dropped"] == {DEAD_PROJECTION: len(dead)}
    # ...and every other official key maps 1:1 onto our state dict.
    kept = {_paddle_name(n) for n, _ in fixture["params"] if n not in dead}
    assert set(model.state_dict()) == kept
    assert report["converted"] == len(kept) == len(fixture["params"]) - len(dead)

    assert count_params(model) == params_ref
    dead_params = sum(int(np.prod(s)) for n, s in fixture["params"]
                      if n in dead and not n.endswith(("running_mean", "running_var")))
    assert fixture["num_parameters"] - dead_params == params_ref

    macs = count_macs(model, input_size=224)
    assert round((macs + dead_projection_macs(fixture)) / 1e9, 3) == gmacs_ref


def test_converter_rules_follow_the_model_definitions():
    assert set(DLA_LEVELS) == set(DLA_CONFIGS) == set(list_models("DLA*"))
    for arch, levels in DLA_LEVELS.items():
        assert levels == DLA_CONFIGS[arch][0], arch
        assert model_info(arch)["family"] == "DLA"
    assert model_info("DLA60")["paper_top1"] == 76.9


@pytest.fixture(scope="module")
def small_checkpoint():
    return official_state_dict(load_fixture("dla46x_c"))


def test_converter_rejects_unknown_key(small_checkpoint):
    src = dict(small_checkpoint)
    src["level3.tree2.bogus.weight"] = np.zeros([4], np.float32)
    with pytest.raises(ConversionError, match=r"level3\.tree2\.bogus\.weight"):
        convert_state_dict("DLA46x_c", src)


def test_converter_rejects_wrong_shape(small_checkpoint):
    src = dict(small_checkpoint)
    src["level4.tree2.root.conv.weight"] = np.zeros([128, 7, 1, 1], np.float32)
    with pytest.raises(ConversionError, match=r"level4\.tree2\.root\.conv\.weight"):
        convert_state_dict("DLA46x_c", src)


def test_converter_rejects_missing_key(small_checkpoint):
    src = dict(small_checkpoint)
    del src["level5.project.1.running_var"]   # a live projection (level5 has one level)
    with pytest.raises(ConversionError, match=r"level5\.project\.1\._variance"):
        convert_state_dict("DLA46x_c", src)


def _check_stages(model, size):
    feats = model.forward_stages(paddle.randn([2, 3, size, size]))
    assert [list(f.shape) for f in feats] == [
        [2, c, size // s, size // s] for c, s in zip(model.stage_channels, (4, 8, 16, 32))]
    return feats


@pytest.mark.parametrize("arch, size", [("DLA34", 96), ("DLA46x_c", 160)])
def test_train_step_and_input_sizes(arch, size):
    paddle.seed(0)
    model = build_model(arch, class_dim=10)
    model.train()
    opt = paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.9,
                                    parameters=model.parameters(), weight_decay=1e-4)
    x = paddle.randn([2, 3, size, size])
    logits = model(x)
    assert logits.shape == [2, 10]
    loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor([1, 7]))
    loss.backward()
    params = [p for p in model.parameters() if not p.stop_gradient]
    missing = [p.name for p in params if p.grad is None or p.grad.shape != p.shape]
    assert not missing, f"parameters without gradient: {missing}"
    before = model.fc.weight.numpy().copy()
    opt.step()
    opt.clear_grad()
    assert not np.allclose(before, model.fc.weight.numpy())

    model.eval()
    with paddle.no_grad():
        for s in (96, 160):
            feats = _check_stages(model, s)
            x = paddle.randn([2, 3, s, s])
            out = model(x)
            assert out.shape == [2, 10]
            np.testing.assert_allclose(
                model.forward_head(model.forward_features(x)).numpy(), out.numpy(), rtol=1e-6)
        assert feats[-1].shape[1] == model.num_features


def test_cardinality_is_per_model():
    # Built in this order in one process, as in the parity test: 102x2 (64 groups), then
    # 102x and a fresh small X model (32 groups each), then 102x2 again.
    x2 = _model("DLA102x2")
    x = _model("DLA102x")
    small = build_model("DLA46x_c", class_dim=10)
    again = build_model("DLA102x2", class_dim=10)
    for model, groups in ((x2, 64), (x, 32), (small, 32), (again, 64)):
        assert model.cardinality == groups
        conv = model.level2.tree1.conv2
        assert conv._groups == groups
        assert conv.weight.shape[0] == model.channels[2] * groups // 32
    head_10 = 10 * (1024 + 1)                           # fc weight + bias for 10 classes
    assert count_params(again) - head_10 + 1000 * (1024 + 1) == 41_282_200
    assert count_params(x) == 26_309_272


def test_official_init():
    paddle.seed(1)
    model = build_model("DLA46_c", class_dim=10)
    w = model.level5.tree1.conv2.weight.numpy()          # 3x3, 128 -> 128
    assert abs(w.std() / np.sqrt(2.0 / (9 * w.shape[0])) - 1) < 0.05
    fc = model.fc.weight.numpy()
    assert abs(fc.std() / np.sqrt(2.0 / 10) - 1) < 0.05
    bound = 1 / np.sqrt(model.num_features)
    assert np.abs(model.fc.bias.numpy()).max() <= bound
    bn = model.level3.tree2.root.bn
    assert (bn.weight.numpy() == 1).all() and (bn.bias.numpy() == 0).all()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_recipes():
    import yaml
    for arch in DLA_CONFIGS:
        cfg = yaml.safe_load(open(os.path.join(ROOT, "configs", "DLA", f"{arch}.yaml")))
        # the official recipe (ARCHITECTURES.md, ucbdrive/dla classify.py)
        assert cfg["ARCHITECTURE"]["name"] == arch
        assert cfg["epochs"] == 120 and cfg["TRAIN"]["batch_size"] == 256
        assert cfg["LEARNING_RATE"] == {"function": "Piecewise", "params": {
            "lr": 0.1, "decay_epochs": [30, 60, 90], "gamma": 0.1}}
        assert cfg["OPTIMIZER"]["params"]["momentum"] == 0.9
        assert cfg["OPTIMIZER"]["regularizer"] == {"function": "L2", "factor": 0.0001}
        assert not cfg["ls_epsilon"]
        train_ops = [next(iter(t)) for t in cfg["TRAIN"]["transforms"]]
        assert train_ops[1:3] == ["RandCropImage", "RandFlipImage"]
        assert cfg["VALID"]["transforms"][1] == {"ResizeImage": {"resize_short": 256}}
        assert cfg["VALID"]["transforms"][2] == {"CropImage": {"size": 224}}
    best = yaml.safe_load(open(os.path.join(ROOT, "configs", "DLA", "DLA60_best.yaml")))
    assert best["ARCHITECTURE"]["name"] == "DLA60" and best["ls_epsilon"] == 0.1
    assert best["LEARNING_RATE"]["params"]["warmup_epoch"] > 0
    assert best["use_mix"] and best["TRAIN"]["mix"] == [{"MixupOperator": {"alpha": 0.2}}]


@pytest.mark.parametrize("script", ["run_train_dla60_best.sh", "run_test_dla60_best.sh"])
def test_run_scripts_explain_missing_data(script, tmp_path):
    missing = tmp_path / "no_imagenet"
    env = dict(os.environ, DATA_DIR=str(missing), PYTHON="false")
    res = subprocess.run(["bash", os.path.join(ROOT, script)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert str(missing) in res.stderr and "DATA_DIR" in res.stderr

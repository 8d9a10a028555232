"""ReXNet / ReXNet-lite: parity with the official clovaai/rexnet code (official and timm
checkpoint naming), exact counts, training, drop-path, feature maps, to_static and recipes."""
import glob
import os
import re

import numpy as np
import paddle
import pytest

from parity import (assert_logits_close, fixture_input, load_fixture, official_state_dict,
                    run_parity)
from ppcls.convert import apply_rules, convert_state_dict, rules_for
from ppcls.modeling import build_model, model_info
from ppcls.analysis.flops import count_macs, count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# fixture -> (our model, exact params, GMACs at 224) from shared/reference/ARCHITECTURES.md
REFERENCE = {
    "rexnet_0.9": ("ReXNet_0_9", 4_091_257, 0.348),
    "rexnet_1.0": ("ReXNet_1_0", 4_796_873, 0.398),
    "rexnet_1.3": ("ReXNet_1_3", 7_557_091, 0.662),
    "rexnet_1.5": ("ReXNet_1_5", 9_728_593, 0.876),
    "rexnet_2.0": ("ReXNet_2_0", 16_366_620, 1.529),
    "rexnet_2.2": ("ReXNet_2_2", 19_485_308, 1.843),
    "rexnet_3.0": ("ReXNet_3_0", 34_708_792, 3.396),
    "rexnet_lite_1.0": ("ReXNet_lite_1_0", 4_740_056, 0.407),
    "rexnet_lite_1.3": ("ReXNet_lite_1_3", 6_747_960, 0.646),
    "rexnet_lite_1.5": ("ReXNet_lite_1_5", 8_332_296, 0.836),
    "rexnet_lite_2.0": ("ReXNet_lite_2_0", 12_966_200, 1.498),
}
TIMM_FIXTURES = [f for f in REFERENCE if "lite" not in f]     # timm has no ReXNet-lite


# ---- official -> timm names, written from timm/models/rexnet.py (not from our converter) -----
def _timm_block_layout(block, expand, se):
    """timm module of each position of the official block's ``out`` Sequential (None: an
    activation without parameters)."""
    layout = ["conv_exp.conv", "conv_exp.bn", None] if expand else []
    layout += ["conv_dw.conv", "conv_dw.bn"]
    if se:
        layout.append("se")
    layout += [None, "conv_pwl.conv", "conv_pwl.bn"]
    return layout


def official_to_timm(sd):
    """Rename an official ReXNetV1 state dict the way timm's ``rexnet_*`` stores the same
    weights: stem.*, features.{0-15}.{conv_exp,conv_dw,se,conv_pwl}.*, features.16 (head conv),
    head.fc as a Linear ([classes, features], not a 1x1 conv)."""
    out = {}
    for name, value in sd.items():
        parts = name.split(".")
        if parts[0] == "output":                        # output.1 = classifier conv
            assert parts[1] == "1", name
            new = "head.fc." + parts[2]
            if value.ndim == 4:
                value = value.reshape(value.shape[:2])
        else:
            n = int(parts[1])
            if n < 3:                                   # stem conv, BN (SiLU has no tensors)
                new = "stem." + {0: "conv", 1: "bn"}[n] + "." + ".".join(parts[2:])
            elif n < 19:                                # block n - 3
                block = n - 3
                layout = _timm_block_layout(block, expand=block > 0, se=block >= 3)
                module = layout[int(parts[3])]
                rest = parts[4:]
                if module == "se":                      # out.5.fc.{0,1,3}.*
                    assert rest[0] == "fc", name
                    module = "se." + {"0": "fc1", "1": "bn", "3": "fc2"}[rest[1]]
                    rest = rest[2:]
                new = f"features.{block}.{module}." + ".".join(rest)
            else:                                       # head conv 19, BN 20
                new = "features.16." + {19: "conv", 20: "bn"}[n] + "." + ".".join(parts[2:])
        assert new not in out, new
        out[new] = value
    return out


# ---- one model per fixture, shared by the tests of that fixture ------------------------------
@pytest.fixture(scope="module", params=list(REFERENCE))
def parity_case(request):
    name = request.param
    arch = REFERENCE[name][0]
    model, ours, expected, report = run_parity(name, arch)
    yield name, arch, model, ours, expected, report
    del model


def test_parity_and_counts(parity_case):
    name, arch, model, ours, expected, report = parity_case
    assert report["dropped"] == {} and report["class_dim"] == 1000
    assert_logits_close(ours, expected)
    _, params, gmacs = REFERENCE[name]
    assert count_params(model) == params == load_fixture(name)["num_parameters"]
    assert round(count_macs(model, 224) / 1e9, 3) == gmacs
    info = model_info(arch)
    assert info["family"] == "ReXNet"


def test_timm_checkpoint_parity(parity_case):
    """The same weights under timm's names (and timm's Linear head) give the same logits."""
    name, arch, model, _, expected, _ = parity_case
    if name not in TIMM_FIXTURES:
        pytest.skip("timm has no ReXNet-lite")
    fixture = load_fixture(name)
    timm_sd = official_to_timm(official_state_dict(fixture))
    assert "stem.conv.weight" in timm_sd and timm_sd["head.fc.weight"].ndim == 2
    weights, report = convert_state_dict(arch, timm_sd, source=f"timm {name}")
    assert report["class_dim"] == 1000 and report["dropped"] == {}
    model.set_state_dict(weights)
    model.eval()
    with paddle.no_grad():
        ours = model(paddle.to_tensor(fixture_input(fixture))).numpy()
    assert_logits_close(ours, expected)


def test_timm_patterns_leave_official_names_alone():
    """A timm rule applied to an official name is a no-op, and every timm name is renamed."""
    for name in TIMM_FIXTURES:
        arch = REFERENCE[name][0]
        sd = {n: np.zeros(s, np.float32) for n, s in load_fixture(name)["params"]}
        for pattern, _ in rules_for(arch).rename:
            hits = [n for n in sd if re.search(pattern, n)]
            assert not hits, (pattern, hits[:3])
        renamed, _ = apply_rules(arch, sd)
        official = {re.sub("running_var$", "_variance", re.sub("running_mean$", "_mean", n))
                    for n in sd}
        assert set(renamed) == official
        timm_renamed, _ = apply_rules(arch, official_to_timm(sd))
        assert set(timm_renamed) == official


# ---- training-time behaviour on small inputs --------------------------------------------------
@pytest.mark.parametrize("arch", ["ReXNet_1_0", "ReXNet_lite_1_0"])
def test_train_step_and_stages(arch):
    paddle.seed(0)
    model = build_model(arch, class_dim=10)
    model.train()
    x = paddle.randn([4, 3, 64, 64])
    y = paddle.to_tensor([0, 3, 5, 9], dtype="int64")
    feats = model.forward_stages(x)
    assert [tuple(f.shape) for f in feats] == [
        (4, c, 64 // s, 64 // s) for c, s in zip(model.stage_channels, (4, 8, 16, 32))]
    assert model.stage_channels[-1] == model.num_features
    loss = paddle.nn.functional.cross_entropy(model.forward_head(feats[-1]), y)
    loss.backward()
    params = [p for p in model.parameters() if not p.stop_gradient]
    missing = [p.name for p in params if p.grad is None or p.grad.size == 0]
    assert not missing, missing[:5]
    before = [p.numpy().copy() for p in params]
    opt = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=params, use_nesterov=True)
    opt.step()
    changed = sum(not np.array_equal(b, p.numpy()) for b, p in zip(before, params))
    assert changed == len(params)


def test_drop_path_train_only():
    paddle.seed(1)
    plain = build_model("ReXNet_1_0", class_dim=10, dropout=0.0)
    dropped = build_model("ReXNet_1_0", class_dim=10, dropout=0.0, drop_path_rate=0.3)
    dropped.set_state_dict(plain.state_dict())
    blocks = [dropped.features[i] for i in range(3, 19)]
    assert [b.drop_path is not None for b in blocks] == [b.use_shortcut for b in blocks]
    assert blocks[-1].drop_path.drop_prob == pytest.approx(0.3)
    x = paddle.randn([4, 3, 64, 64])
    plain.eval()                                 # first: training updates the BN statistics
    dropped.eval()
    np.testing.assert_array_equal(plain(x).numpy(), dropped(x).numpy())
    plain.train()
    dropped.train()
    paddle.seed(2)
    assert not np.allclose(plain(x).numpy(), dropped(x).numpy())


def test_to_static_matches_dygraph():
    """The partial residual (concat of slices) traces under paddle.jit.to_static and
    back-propagates there (train mode, dropout off so both runs are deterministic)."""
    paddle.seed(3)
    model = build_model("ReXNet_1_0", class_dim=10, dropout=0.0)
    model.train()
    x = paddle.randn([2, 3, 64, 64])
    ref = model(x).numpy()
    static = paddle.jit.to_static(model, full_graph=True)
    out = static(x)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    out.mean().backward()
    params = [p for p in model.parameters() if not p.stop_gradient]
    assert all(p.grad is not None for p in params)


# ---- recipes -----------------------------------------------------------------------------------
def test_recipes():
    from ppcls.engine.recipe import load_config
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "ReXNet", "*.yaml")))
    assert sorted(os.path.basename(p)[:-5] for p in paths) == sorted(a for a, _, _ in REFERENCE.values())
    for path in paths:
        cfg = load_config(path)
        assert cfg.ARCHITECTURE.name == os.path.basename(path)[:-5]
        assert dict(cfg.ARCHITECTURE.params) == {"dropout": 0.2}
        assert (cfg.epochs, cfg.ls_epsilon, cfg.TRAIN.batch_size) == (400, 0.1, 512)
        assert cfg.LEARNING_RATE.function == "Cosine"
        assert dict(cfg.LEARNING_RATE.params) == {"lr": 0.5, "warmup_epoch": 5}
        assert cfg.OPTIMIZER.function == "Momentum"
        assert dict(cfg.OPTIMIZER.params) == {"momentum": 0.9, "use_nesterov": True}
        assert cfg.OPTIMIZER.regularizer.factor == pytest.approx(1e-5)
        train = {list(op)[0]: list(op.values())[0] for op in cfg.TRAIN.transforms}
        assert train["RandCropImage"] == {"size": 224, "interpolation": "bicubic"}
        assert train["RandAugment"] == {"num_layers": 2, "magnitude": 9, "magnitude_std": 0.5}
        assert train["RandomErasing"] == {"EPSILON": 0.2, "mode": "pixel"}
        valid = {list(op)[0]: list(op.values())[0] for op in cfg.VALID.transforms}
        assert valid["ResizeImage"] == {"resize_short": 256, "interpolation": "bicubic"}
        assert valid["CropImage"] == {"size": 224}

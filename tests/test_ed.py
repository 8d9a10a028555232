"""ED-Net: parity with the official megvii-research/ED-Net models, exact counts, the -A/-B
variants' FLOPs, training, input-size rule and feature maps.

Speed: random initialisation dominates building these models on CPU (Paddle draws ~10M normals
per second; ED152 takes ~13 s). Where every weight is replaced by fixture weights or only
counted, models are built under ``cheap_init`` (constant initial values, no kaiming pass); the
train steps re-initialise with numpy, except ED_ResNet50, which is built with the real init.
"""
import contextlib

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppcls.modeling.architectures.resnet as resnet_module
from ppcls.modeling import build_model, list_models, model_info
from ppcls.modeling.architectures import ed_resnet as ED
from ppcls.modeling.architectures.resnet import ResNet
from ppcls.analysis.flops import count_macs, count_params
from parity import assert_logits_close, fixture_input, load_fixture, official_float64, \
    run_parity, run_parity_float64

# fixture, suite model, GMACs of the official model (ARCHITECTURES.md, 3 decimals)
RELEASED = [
    ("ed50", "ED_ResNet50", 4.211),
    ("ed101", "ED_ResNet101", 8.046),
    ("ed152", "ED_ResNet152", 11.882),
    ("ed_resnext50", "ED_ResNeXt50", 4.475),
    ("ed_resnext101", "ED_ResNeXt101", 8.460),
    ("ed_se50", "ED_SE_ResNet50", 4.214),
    ("ed_se_resnext50", "ED_SE_ResNeXt50", 4.477),
]
# Published GFLOPs of the -A/-B variants (ARCHITECTURES.md; GFLOPs there are MACs).
PUBLISHED = {
    "ED_ResNet50_A": 4.0, "ED_ResNet50_B": 2.1,
    "ED_ResNet101_A": 7.8, "ED_ResNet101_B": 3.9,
    "ED_ResNet152_A": 11.5, "ED_ResNet152_B": 5.6,
    "ED_ResNeXt50_A": 4.2, "ED_ResNeXt50_B": 2.9,
    "ED_ResNeXt101_A": 7.9, "ED_ResNeXt101_B": 5.4,
}
# Published top-1 errors -> registered paper_top1 = 100 - error.
PUBLISHED_ERROR = {
    "ED_ResNet50": 23.12, "ED_ResNet101": 22.21, "ED_ResNet152": 21.98,
    "ED_ResNeXt50": 22.01, "ED_ResNeXt101": 20.93,
    "ED_ResNet50_A": 23.08, "ED_ResNet101_A": 22.23, "ED_ResNet152_A": 22.01,
    "ED_ResNeXt50_A": 22.03, "ED_ResNeXt101_A": 20.97,
    "ED_ResNet50_B": 23.94, "ED_ResNet101_B": 23.14, "ED_ResNet152_B": 22.52,
    "ED_ResNeXt50_B": 22.61, "ED_ResNeXt101_B": 21.57,
}

# The SE models are ill-conditioned under the fixture's random weights: with activations in
# the thousands, an SE gate moves by ~|activation|/4 times any relative error of its input, so
# float32 rounding alone changes the logits by ~1e-3..1e-2 (test_se_fixtures_are_ill_conditioned
# measures it; our float32 and float64 runs differ by 8e-3; the official float32 logits are
# 1.2e-2 / 1.7e-3 (SE-ResNet50) and 8e-2 / 2.8e-2 (SE-ResNeXt50) from the official float64 ones).
# 1e-5 is unreachable by any float32 port, so the strict 1e-5 is checked in float64: our float64
# logits against the official float64 logits (tests/fixtures/parity_float64.json; measured
# 1.3e-9 and 8e-7). The float32 check is a coarse one at SE_FIXTURE_RTOL, above that float32
# noise floor (the official float32 logits themselves are 8e-2 from exact): which float32 path
# runs decides where inside it we land (SE-ResNet50 / SE-ResNeXt50 measured with MKL's generic
# kernels: 1.2e-2 / 8.8e-3; with its AVX2 kernels, which the tools and tests select on AMD CPUs
# (ppcls.utils.cpu_env): 1.2e-2 / 5.7e-2).
# 0.15 still fails every structural slip tried (no SE 15x, SE without its ReLU 0.6, max-pool SE
# 0.6, ED without its ReLU 0.5, ReLU after the decoder 1.3 relative error).
SE_FIXTURE_RTOL = 0.15
SE_FIXTURES = {"ed_se50", "ed_se_resnext50"}


@contextlib.contextmanager
def cheap_init():
    """Build without random initialisation (constant parameters, no kaiming pass)."""
    const = paddle.nn.initializer.Constant(0.0)
    saved = resnet_module.kaiming_normal_fan_out_
    paddle.nn.initializer.set_global_initializer(const, const)
    resnet_module.kaiming_normal_fan_out_ = lambda layer: None
    try:
        yield
    finally:
        resnet_module.kaiming_normal_fan_out_ = saved
        paddle.nn.initializer.set_global_initializer(None)


def numpy_reinit(model, seed=0):
    """Fast random weights for a cheap_init model: He-normal (fan-in) for convs and linears,
    BN scale ~1, biases ~0 (values as in the fixture rule)."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        shape = p.shape
        if len(shape) > 1:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif name.endswith("weight"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.1, 0.1, shape)
        p.set_value(value.astype("float32"))


_PARITY = {}   # fixture -> (model, ours, expected), kept for test_se_fixtures_are_ill_conditioned
_KEEP = {"ed50", "ed_se50"}


def parity_result(fixture_name, arch):
    if fixture_name in _PARITY:
        return _PARITY[fixture_name]
    with cheap_init():
        model, ours, expected, report = run_parity(fixture_name, arch)
    assert report["dropped"] == {}
    if fixture_name in _KEEP:
        _PARITY[fixture_name] = (model, ours, expected)
    return model, ours, expected


@pytest.mark.parametrize("fixture_name,arch,gmacs", RELEASED, ids=[r[1] for r in RELEASED])
def test_released_parity_params_macs(fixture_name, arch, gmacs):
    model, ours, expected = parity_result(fixture_name, arch)
    assert count_params(model) == load_fixture(fixture_name)["num_parameters"]
    assert round(count_macs(model, 224) / 1e9, 3) == gmacs
    rtol = SE_FIXTURE_RTOL if fixture_name in SE_FIXTURES else 1e-5
    assert_logits_close(ours, expected, rtol=rtol)
    if fixture_name in SE_FIXTURES:                   # the strict criterion in float64
        assert_logits_close(run_parity_float64(model, fixture_name), official_float64(fixture_name))


def test_se_fixtures_are_ill_conditioned():
    """Why SE_FIXTURE_RTOL: a 1e-6 relative change of the input moves the SE model's logits by
    far more than 1e-5 relative (the well-conditioned ED50 by less)."""
    def sensitivity(fixture_name, arch):
        model = parity_result(fixture_name, arch)[0]
        x = fixture_input(load_fixture(fixture_name))[:1]         # first image only
        with paddle.no_grad():
            a = model(paddle.to_tensor(x)).numpy()
            b = model(paddle.to_tensor(x * np.float32(1 + 1e-6))).numpy()
        return float(np.abs(a - b).max() / np.abs(b).max())
    assert sensitivity("ed_se50", "ED_SE_ResNet50") > 1e-4
    assert sensitivity("ed50", "ED_ResNet50") < 1e-5


def test_registry_and_paper_top1():
    names = set(list_models("ED_*"))
    assert names == {r[1] for r in RELEASED} | set(PUBLISHED)
    for name in names:
        info = model_info(name)
        assert info["family"] == "ED-Net"
        if name in PUBLISHED_ERROR:
            assert info["paper_top1"] == pytest.approx(100 - PUBLISHED_ERROR[name])
        else:                                   # the SE models have no published figure
            assert "paper_top1" not in info


def _train_step(model, size, class_dim=10):
    model.train()
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, size, size)).astype("float32"))
    y = paddle.to_tensor(np.array([1, 7], dtype="int64"))
    params = [p for p in model.parameters() if not p.stop_gradient]
    before = [p.numpy().copy() for p in params]
    loss = F.cross_entropy(model(x), y)
    assert np.isfinite(float(loss))
    loss.backward()
    missing = [p.name for p in params if p.grad is None or p.grad.shape != p.shape]
    assert not missing, f"{len(missing)} parameters without gradient: {missing[:5]}"
    opt = paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.9, parameters=params)
    opt.step()
    opt.clear_grad()
    unchanged = [p.name for p, b in zip(params, before) if np.array_equal(p.numpy(), b)]
    assert not unchanged, f"{len(unchanged)} parameters not updated: {unchanged[:5]}"
    return model


@pytest.fixture(scope="module")
def ed50_trained():
    """ED_ResNet50 with the real (official) initialisation, after one train step at 96x96."""
    model = build_model("ED_ResNet50", class_dim=10)
    init = {"decoder": model.layer1[0].decoder.decoder_conv.weight.numpy(),
            "decoder_bn": model.layer2[0].decoder.decoder_bn.weight.numpy(),
            "fc_weight": model.fc.weight.numpy(), "fc_bias": model.fc.bias.numpy()}
    model.init_snapshot = init
    return _train_step(model, 96)


def test_init_mirrors_official(ed50_trained):
    """Official init loop: convs (the transposed decoder included) kaiming fan_out, BN 1/0,
    every bias 0 (fc and SE included), Linear weights at torch's default uniform(+-1/sqrt(in))."""
    init = ed50_trained.init_snapshot
    std = np.sqrt(2.0 / (64 * 9))              # decoder weight [in=64, out/groups=8, 3, 3]
    assert abs(float(init["decoder"].std()) - std) < 0.1 * std
    assert (init["decoder_bn"] == 1).all()
    assert (init["fc_bias"] == 0).all() and np.abs(init["fc_weight"]).max() <= 1 / np.sqrt(2048)
    se = ED.SELayer(256)
    assert float(paddle.abs(se.fc_reduction.bias).max()) == 0.0
    assert float(paddle.abs(se.fc_extention.bias).max()) == 0.0
    assert float(paddle.abs(se.fc_reduction.weight).max()) <= 1 / np.sqrt(256)
    assert float(paddle.abs(se.fc_extention.weight).max()) <= 1 / np.sqrt(16)


def test_ed50_train_step(ed50_trained):
    assert ed50_trained.fc.weight.shape == [2048, 10]


def test_forward_stages(ed50_trained):
    model = ed50_trained
    model.eval()
    with paddle.no_grad():
        feats = model.forward_stages(paddle.zeros([1, 3, 96, 96]))
    assert model.stage_channels == [256, 512, 1024, 2048]
    assert [list(f.shape) for f in feats] == [[1, c, 96 // s, 96 // s] for c, s in
                                              zip(model.stage_channels, (4, 8, 16, 32))]
    with paddle.no_grad():
        assert list(model.forward_features(paddle.zeros([1, 3, 160, 160])).shape) == [1, 2048, 5, 5]


@pytest.mark.parametrize("size", [64, 128, 256, 225])
def test_unsupported_input_size_is_explained(ed50_trained, size):
    ed50_trained.eval()
    with pytest.raises(ValueError, match=rf"input size {size}x{size}.*224 works"):
        ed50_trained(paddle.zeros([1, 3, size, size]))


def test_input_size_rule_matches_the_blocks(ed50_trained):
    """ed_input_size_ok (s % 64 in 29..32) is exactly where every encoder/decoder pair keeps its
    shape: run the stages without the up-front check and let the blocks decide."""
    model = ed50_trained
    model.eval()
    for size in list(range(24, 40)) + list(range(88, 100)):
        x = paddle.zeros([1, 3, size, size])
        try:
            with paddle.no_grad():
                ResNet.forward_stages(model, x)
            works = True
        except ValueError as e:
            assert "ED-Net needs inputs whose stage-5 (stride-32) map is odd-sized" in str(e)
            works = False
        assert works == ED.ed_input_size_ok(size) == (size % 64 in (29, 30, 31, 32)), size
    with pytest.raises(ValueError, match="input size 96x64"):
        model(paddle.zeros([1, 3, 96, 64]))


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_efficient_variant_macs_and_train_step(arch):
    with cheap_init():
        model = build_model(arch)
    gmacs = count_macs(model, 224) / 1e9
    assert abs(gmacs - PUBLISHED[arch]) <= 0.03 * PUBLISHED[arch], (arch, gmacs)
    # the -A/-B rule: narrower transformation branch, ED path and block outputs untouched
    base = 128 if "ResNeXt" in arch else 64
    for stage, width in enumerate(model.stage_widths):
        block = getattr(model, f"layer{stage + 1}")[0]
        assert block.conv2.weight.shape[0] == width and width % (32 if "ResNeXt" in arch else 8) == 0
        assert block.encoder.encoder_conv.weight.shape[0] == base * 2 ** stage
        assert width <= base * 2 ** stage
    assert model.stage_channels == [256, 512, 1024, 2048]
    with cheap_init():
        small = build_model(arch, class_dim=10)
    numpy_reinit(small)
    _train_step(small, 32)
    small.eval()
    with paddle.no_grad():
        feats = small.forward_stages(paddle.zeros([1, 3, 32, 32]))
    assert [f.shape[2] for f in feats] == [8, 4, 2, 1]


def test_recipes():
    """configs/EDNet/<Model>.yaml for every ED model: the paper's recipe."""
    import os

    import yaml
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "EDNet")
    for name in list_models("ED_*"):
        with open(os.path.join(root, f"{name}.yaml")) as f:
            cfg = yaml.safe_load(f)
        assert cfg["ARCHITECTURE"]["name"] == name
        assert cfg["epochs"] == 100
        assert cfg["LEARNING_RATE"] == {"function": "Piecewise",
                                        "params": {"lr": 0.1, "decay_epochs": [30, 60, 90], "gamma": 0.1}}
        assert cfg["OPTIMIZER"]["function"] == "Momentum"
        assert cfg["OPTIMIZER"]["params"]["momentum"] == 0.9
        assert cfg["OPTIMIZER"]["regularizer"] == {"function": "L2", "factor": 0.0001}
        assert cfg["TRAIN"]["batch_size"] == 256
        valid = {k: v for t in cfg["VALID"]["transforms"] for k, v in t.items()}
        assert valid["ResizeImage"] == {"resize_short": 256} and valid["CropImage"] == {"size": 224}
        train = {k: v for t in cfg["TRAIN"]["transforms"] for k, v in t.items()}
        assert train["RandCropImage"]["size"] == 224

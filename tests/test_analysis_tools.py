"""Analysis tools (issue 9): parameter / FLOPs counters against the reference and the published
tables, training-curve plots from logs, and the generated model zoo table.

Every model is built once (zero weights: counts depend on shapes only) and measured once; the
count tests, the published-table tests and the model zoo tests share those counts.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppcls.modeling import list_models
from ppcls.modeling.architectures.layers import ECA
from ppcls.analysis import flops, model_zoo
from ppcls.analysis import log_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHITECTURES_MD = os.path.join(ROOT, "..", "shared", "reference", "ARCHITECTURES.md")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "parity")

# ---------------------------------------------------------------------------- reference data
# our model -> (reference name, params, GMACs) from ARCHITECTURES.md "Exact counts of the
# official models" (DLA: the "params without dead DLA projections" column).
REFERENCE = {
    "DLA34": ("dla34", 15742104, 3.073),
    "DLA46_c": ("dla46_c", 1301400, 0.576),
    "DLA46x_c": ("dla46x_c", 1068440, 0.534),
    "DLA60x_c": ("dla60x_c", 1319832, 0.585),
    "DLA60": ("dla60", 22036632, 4.313),
    "DLA60x": ("dla60x", 17352344, 3.594),
    "DLA102": ("dla102", 33268888, 7.293),
    "DLA102x": ("dla102x", 26309272, 5.976),
    "DLA102x2": ("dla102x2", 41282200, 9.412),
    "DLA169": ("dla169", 53389720, 11.725),
    "ECA_ResNet18": ("eca_resnet18_k3577", 11689556, 1.814),
    "ECA_ResNet34": ("eca_resnet34_k3357", 21797744, 3.664),
    "ECA_ResNet50": ("eca_resnet50_k3557", 25557112, 4.089),
    "ECA_ResNet101": ("eca_resnet101_k3357", 44549317, 7.802),
    "ECA_ResNet152": ("eca_resnet152_k3357", 60193042, 11.514),
    "ECA_MobileNetV2": ("eca_mobilenet_v2_k13", 3504903, 0.301),
    "RLA_ResNet50": ("rla_resnet50", 25870696, 4.455),
    "RLA_ECA_ResNet50": ("rla_resnet50_eca", 25870782, 4.455),
    "RLA_ResNet101": ("rla_resnet101", 45003176, 8.334),
    "RLA_ECA_ResNet101": ("rla_resnet101_eca", 45003347, 8.334),
    "RLA_ResNet152": ("rla_resnet152", 60770792, 12.267),
    "RLA_ECA_ResNet152": ("rla_resnet152_eca", 60771048, 12.268),
    "RLA_MobileNetV2": ("dsrla_mobilenetv2_k32", 3624168, 0.353),
    "RLA_ECA_MobileNetV2": ("dsrla_mobilenetv2_k32_eca", 3624199, 0.353),
    "RLA_MobileNetV2_FullConv": ("rla_mobilenetv2_k32", 3633096, 0.555),
    "ResNet50": ("baseline_resnet50", 25557032, 4.089),
    "ResNet101": ("baseline_resnet101", 44549160, 7.801),
    "MobileNetV2": ("baseline_mobilenet_v2", 3504872, 0.301),
    "ED_ResNet50": ("ED50 (resnet50_ed)", 28424104, 4.211),
    "ED_ResNet101": ("ED101 (resnet101_ed)", 49966504, 8.046),
    "ED_ResNet152": ("ED152 (resnet152_ed)", 67712936, 11.882),
    "ED_ResNeXt50": ("ED-ResNeXt50 (resnext50_ed)", 30732840, 4.475),
    "ED_ResNeXt101": ("ED-ResNeXt101 (resnext101_ed)", 54947368, 8.460),
    "ED_SE_ResNet50": ("ED-SE50 (se_resnet50_ed)", 30955096, 4.214),
    "ED_SE_ResNeXt50": ("ED-SE-ResNeXt50 (se_resnext50_ed)", 33263832, 4.477),
    "ReXNet_0_9": ("rexnet_0.9", 4091257, 0.348),
    "ReXNet_1_0": ("rexnet_1.0", 4796873, 0.398),
    "ReXNet_1_3": ("rexnet_1.3", 7557091, 0.662),
    "ReXNet_1_5": ("rexnet_1.5", 9728593, 0.876),
    "ReXNet_2_0": ("rexnet_2.0", 16366620, 1.529),
    "ReXNet_2_2": ("rexnet_2.2", 19485308, 1.843),
    "ReXNet_3_0": ("rexnet_3.0", 34708792, 3.396),
    "ReXNet_lite_1_0": ("rexnet_lite_1.0", 4740056, 0.407),
    "ReXNet_lite_1_3": ("rexnet_lite_1.3", 6747960, 0.646),
    "ReXNet_lite_1_5": ("rexnet_lite_1.5", 8332296, 0.836),
    "ReXNet_lite_2_0": ("rexnet_lite_2.0", 12966200, 1.498),
}
# torchvision baselines without a row: parameters of their parity fixture (num_parameters).
FIXTURE_PARAMS = {
    "ResNet18": "tv_resnet18", "ResNet34": "tv_resnet34", "ResNet152": "tv_resnet152",
    "ResNeXt50_32x4d": "tv_resnext50_32x4d", "ResNeXt101_32x8d": "tv_resnext101_32x8d",
}
# ED -A/-B: published GFLOPs only (ARCHITECTURES.md, one decimal).
ED_EFFICIENT_GFLOPS = {
    "ED_ResNet50_A": 4.0, "ED_ResNet50_B": 2.1, "ED_ResNet101_A": 7.8, "ED_ResNet101_B": 3.9,
    "ED_ResNet152_A": 11.5, "ED_ResNet152_B": 5.6, "ED_ResNeXt50_A": 4.2, "ED_ResNeXt50_B": 2.9,
    "ED_ResNeXt101_A": 7.9, "ED_ResNeXt101_B": 5.4,
}
# Published thop tables (binary units), ARCHITECTURES.md "Published tables to reproduce":
# model -> (params, FLOPs, the thop build that paper used)
PUBLISHED_THOP = {
    "ECA_ResNet18": ("11.15M", "1.70G", "thop-2019"),
    "ECA_ResNet34": ("20.79M", "3.43G", "thop-2019"),
    "ECA_ResNet50": ("24.37M", "3.86G", "thop-2019"),
    "ECA_ResNet101": ("42.49M", "7.35G", "thop-2019"),
    "ECA_ResNet152": ("57.41M", "10.83G", "thop-2019"),
    "ECA_MobileNetV2": ("3.34M", "319.9M", "thop-2019"),
    "RLA_ResNet50": ("24.67M", "4.17G", "thop-2020"),
    "RLA_ECA_ResNet50": ("24.67M", "4.18G", "thop-2020"),
    "RLA_ResNet101": ("42.92M", "7.79G", "thop-2020"),
    "RLA_ECA_ResNet101": ("42.92M", "7.80G", "thop-2020"),
    "RLA_MobileNetV2": ("3.46M", "351.8M", "thop-2020"),
    "RLA_ECA_MobileNetV2": ("3.46M", "352.4M", "thop-2020"),
}


def _require(name):
    if name not in list_models():
        pytest.skip(f"{name} is not registered yet")


@pytest.fixture(scope="module")
def counts():
    """counts(name) -> flops.Counts, each model built and measured once for the module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = flops.count_model(name)
        return cache[name]
    return get


# ---------------------------------------------------------------------------- counts
def test_reference_table_transcribed_from_architectures_md():
    if not os.path.exists(ARCHITECTURES_MD):
        pytest.skip(f"{ARCHITECTURES_MD} not found (shared/ is not beside this checkout)")
    with open(ARCHITECTURES_MD, encoding="utf-8") as f:
        text = f.read()
    rows = {}
    for m in re.finditer(r"^\| ([^|]+?) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \|$", text, re.M):
        rows[m.group(1)] = (int(m.group(3).replace(",", "")), float(m.group(4)))
    for ours, (ref, params, gmacs) in REFERENCE.items():
        assert rows.get(ref) == (params, gmacs), (ours, ref)
    assert len(rows) == len(REFERENCE), sorted(set(rows) - {r for r, _, _ in REFERENCE.values()})


def test_every_registered_model_has_a_reference():
    known = set(REFERENCE) | set(FIXTURE_PARAMS) | set(ED_EFFICIENT_GFLOPS)
    missing = sorted(set(list_models()) - known)
    assert not missing, f"registered without a reference in this test: {missing}"


def _dead_dla_projection_macs(fixture_name, input_size=224):
    """MACs the official DLA forward spends in its dead 1x1 projections (ARCHITECTURES.md: a
    tree with more than one level builds a ``project`` whose output is discarded; our port does
    not build it, the reference GMACs count it). A multi-level tree is one whose ``tree1`` is a
    tree (``<tree>.tree1.tree1.*`` keys); its projection runs at its level's output grid."""
    with open(os.path.join(FIXTURES, f"{fixture_name}.json")) as f:
        params = json.load(f)["params"]
    names = [n for n, _ in params]
    total = 0
    for name, shape in params:
        m = re.match(r"((level(\d)).*)\.project\.0\.weight$", name)
        if m and any(k.startswith(m.group(1) + ".tree1.tree1.") for k in names):
            side = input_size // 2 ** int(m.group(3))
            total += int(np.prod(shape)) * side * side
    return total


@pytest.mark.parametrize("name", list(REFERENCE))
def test_counts_equal_reference(name, counts):
    _require(name)
    ref_name, params, gmacs = REFERENCE[name]
    c = counts(name)
    assert c.params == params, f"{name}: {c.params:,} parameters, {ref_name} has {params:,}"
    macs = c.macs
    if name.startswith("DLA"):
        dead = _dead_dla_projection_macs(ref_name)
        assert dead > 0
        macs += dead
    assert abs(macs / 1e9 - gmacs) <= 0.0005, f"{name}: {macs / 1e9:.4f} GMACs, {ref_name} {gmacs}"


@pytest.mark.parametrize("name", list(FIXTURE_PARAMS))
def test_baseline_params_equal_parity_fixture(name, counts):
    _require(name)
    with open(os.path.join(FIXTURES, f"{FIXTURE_PARAMS[name]}.json")) as f:
        expected = json.load(f)["num_parameters"]
    assert counts(name).params == expected


@pytest.mark.parametrize("name", list(ED_EFFICIENT_GFLOPS))
def test_ed_efficient_variants_land_on_published_gflops(name, counts):
    _require(name)
    assert round(counts(name).macs / 1e9, 1) == ED_EFFICIENT_GFLOPS[name]


@pytest.mark.parametrize("name", list(PUBLISHED_THOP))
def test_thop_counts_reproduce_published_tables(name, counts):
    _require(name)
    params_pub, flops_pub, version = PUBLISHED_THOP[name]
    assert model_zoo.resolve_counter("thop", name) == version
    params, ops = counts(name).value(version)
    assert flops.printed_as(params, params_pub) == params_pub, (name, flops.thop_format(params, 3))
    assert flops.printed_as(ops, flops_pub) == flops_pub, (name, flops.thop_format(ops, 3))
    # ... and the row the tool prints in the papers' units is the published one
    row = next(model_zoo.count_rows([name], "thop", "binary", counts_fn=counts))
    assert (row["params_str"], row["flops_str"]) == (params_pub, flops_pub)


def test_thop_builds_differ_where_the_papers_need_them(counts):
    """The build matters: the other thop build misses published figures of each paper."""
    _require("ECA_ResNet101")
    _require("RLA_ResNet50")
    assert flops.printed_as(counts("ECA_ResNet101").thop_ops["thop-2020"], "7.35G") != "7.35G"
    assert flops.printed_as(counts("RLA_ResNet50").thop_ops["thop-2019"], "4.17G") != "4.17G"
    # plain MACs in binary units are not the published figures either (4.09 GMACs = 3.81G)
    assert flops.printed_as(counts("ECA_ResNet50").macs, "3.86G") == "3.81G"


class _Toy(nn.Layer):
    """conv(bias) -> BN -> ECA -> ReLU -> AvgPool(int 2) -> the same ReLU -> GAP -> Sigmoid -> fc;
    ``unused`` never runs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2D(4)
        self.eca = ECA(k_size=3)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2D(2, stride=2)
        self.gap = nn.AdaptiveAvgPool2D(1)
        self.sig = nn.Sigmoid()
        self.fc = nn.Linear(4, 5)
        self.unused = nn.Linear(7, 7)

    def forward(self, x):
        x = self.relu(self.eca(self.bn(self.conv(x))))
        x = self.relu(self.pool(x))
        return self.fc(paddle.flatten(self.sig(self.gap(x)), 1))


def test_counter_rules_on_a_toy_model():
    c = flops.profile_model(_Toy(), input_size=8)
    conv_out, pooled = 4 * 8 * 8, 4 * 4 * 4            # elements after conv / after pool
    eca_pool = (8 * 8 + 1) * 4                          # official eca_layer's AdaptiveAvgPool2d
    eca_conv = 4 * 3                                    # Conv1d over 4 channels, k = 3
    gap = (4 * 4 + 1) * 4
    # macs: conv, the ECA conv1d, linear
    assert c.macs == conv_out * 27 + eca_conv + 4 * 5
    assert c.macs == flops.count_macs(_Toy(), input_size=8)
    assert c.params == flops.count_params(_Toy()) == 112 + 8 + 3 + 25 + 56
    # thop 0.0.23 (July 2019): conv in*(k+bias)/g per output, BN 4n, ReLU n of its LAST call,
    # AvgPool(int 2) (2+1) per output, linear 2in-1, every leaf's parameters (unused too)
    assert c.thop_ops["thop-2019"] == (3 * conv_out * (9 + 1) + 4 * conv_out + eca_pool + eca_conv
                                       + pooled + 3 * pooled + gap + (2 * 4 - 1) * 5)
    assert c.thop_params["thop-2019"] == 112 + 8 + 3 + 25 + 56
    assert c.thop_zero_types["thop-2019"] == ["Sigmoid"]
    # thop 0.0.31 (2020): conv (in/g*k + bias), BN 2n, ReLU 0, AvgPool 1, linear in, calls
    # accumulate, parameters of layers with a rule that ran
    assert c.thop_ops["thop-2020"] == (conv_out * (27 + 1) + 2 * conv_out + eca_pool + eca_conv
                                       + pooled + gap + 4 * 5)
    assert c.thop_params["thop-2020"] == 112 + 8 + 3 + 25
    assert c.thop_zero_types["thop-2020"] == ["Sigmoid"]


def test_transposed_conv_counted_on_its_input_grid():
    layer = nn.Conv2DTranspose(4, 2, 3, stride=2)
    c = flops.profile_model(nn.Sequential(nn.Conv2D(3, 4, 1, bias_attr=False), layer),
                            input_size=5)
    assert c.macs == 3 * 4 * 25 + (4 * 25) * (2 * 9)             # input grid x (out x k x k)
    assert c.thop_ops["thop-2020"] == 3 * 4 * 25 + (2 * 11 * 11) * (4 * 9 + 1)   # output grid


def test_formats():
    assert flops.thop_format(4147732480, 3) == "3.863G"
    assert flops.thop_format(335449024, 3) == "319.909M"
    assert flops.paper_format(60193020) == "57.41M"          # 57.4045 prints 57.405 -> 57.41
    assert flops.paper_format(335449024) == "319.9M"
    assert flops.printed_as(4089270528, "3.86G") == "3.81G"
    assert flops.printed_as(335449024, "3.34G") == "319.909M"   # other unit: the full print
    assert flops.format_counts(25557112, 4089270528) == "25.56M / 4.089G"
    assert flops.format_counts(25557112, 4089270528, "binary") == "24.37M / 3.81G"
    with pytest.raises(ValueError):
        flops.format_counts(1, 1, "octal")


def test_skip_random_init_restores_random_ops():
    from paddle import _C_ops
    before = _C_ops.gaussian
    with flops.skip_random_init():
        assert _C_ops.gaussian is not before
        w = nn.Linear(8, 8).weight
        assert float(w.abs().sum()) == 0.0
    assert _C_ops.gaussian is before
    assert float(nn.Linear(8, 8).weight.abs().sum()) > 0


def test_paras_flops_cli(capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import paras_flops
    finally:
        sys.path.pop(0)
    _require("ECA_ResNet50")
    assert paras_flops.main(["-a", "ECA_ResNet50", "--counter", "thop", "--units", "binary"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("ECA_ResNet50"))
    assert line.split()[-2:] == ["24.37M", "3.86G"] and "thop-2019" in line
    assert paras_flops.main(["-a", "resnet50"]) == 2
    assert "did you mean ResNet50" in capsys.readouterr().err
    assert paras_flops.main(["-a", "NoSuch*"]) == 2
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "paras_flops.py"), "-h"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "--counter" in r.stdout and "--units" in r.stdout


# ---------------------------------------------------------------------------- training logs
def _step_line(epoch, step, loss, lr):
    return (f"2021-04-09 11:43:34 INFO: epoch:{epoch:<3d}, train step:{step:<4d}, "
            f"loss: {loss:.5f}, lr: {lr:.6f}, batch_cost: 0.40174 s, reader_cost: 0.00584 s, "
            f"ips: 159.30689 images/sec.")


def _valid_line(epoch, top1, top5, loss):
    return (f"2021-04-15 11:15:47 INFO: END epoch:{epoch:<4d}valid top1: {top1:.5f}, top5: "
            f"{top5:.5f}, loss: {loss:.5f},  batch_cost: 0.46643 s, reader_cost: 0.26428 s, "
            f"batch_cost_sum: 177.71115 s, ips: 171.51428 images/sec.")


def _train_end_line(epoch, loss, lr):
    return (f"2021-04-15 11:10:00 INFO: END epoch:{epoch:<4d}train loss: {loss:.5f}, "
            f"top1: 0.50000, lr: {lr:.6f}, batch_cost: 0.40000 s, reader_cost: 0.01000 s, "
            f"ips: 150.00000 images/sec.")


def _write_log(path, epochs=3, seed=0, end_train=True):
    """A synthetic log; returns the per-epoch series it encodes."""
    rng = np.random.RandomState(seed)
    lines = ["2021-04-09 11:43:30 INFO: {'ARCHITECTURE': {'name': 'DLA60'}, 'epochs': 3}",
             "2021-04-09 11:43:31 INFO: Already save model in ./output/DLA60/0"]
    expected = {"loss": [], "lr": [], "top1": [], "top5": [], "vloss": []}
    for e in range(epochs):
        losses = [round(float(v), 5) for v in rng.uniform(1, 7, 4)]
        lr = round(0.1 / (e + 1), 6)
        for i, loss in enumerate(losses):
            lines.append(_step_line(e, 10 * i, loss, lr + 0.01 * i))   # lr moves within
        if end_train:   # the engine's END line: loss (step mean wins), lr after the epoch
            lines.append(_train_end_line(e, 9.99999, round(0.1 / (e + 2), 6)))
        top1, top5, vloss = (round(float(v), 5) for v in (0.2 + 0.1 * e, 0.4 + 0.1 * e, 3 - e))
        lines.append(f"2021-04-15 11:15:40 INFO: epoch:{e:<3d}, valid step:0   , top1: 0.1, "
                     f"top5: 0.2, loss: 9.0, lr: {lr:.6f}")
        lines.append(_valid_line(e, top1, top5, vloss))
        expected["loss"].append(float(np.mean(losses)))
        for k, v in (("lr", lr), ("top1", top1), ("top5", top5), ("vloss", vloss)):
            expected[k].append(v)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return expected


def _assert_series(run, expected):
    n = len(expected["loss"])
    assert run.train_loss() == (list(range(n)), pytest.approx(expected["loss"], abs=1e-9))
    assert run.learning_rate() == (list(range(n)), expected["lr"])
    assert run.valid("top1") == (list(range(n)), expected["top1"])
    assert run.topk_key() == "top5"
    assert run.valid("top5") == (list(range(n)), expected["top5"])
    assert run.valid("loss") == (list(range(n)), expected["vloss"])


def _assert_png(path, min_bytes=10000):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > min_bytes, (path, len(data))
    from PIL import Image
    with Image.open(path) as im:
        assert im.size[0] >= 600 and im.size[1] >= 400


def _eval_visual():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import eval_visual
    finally:
        sys.path.pop(0)
    return eval_visual


def test_parse_single_log_and_plot(tmp_path, capsys):
    log = tmp_path / "train.log"
    expected = _write_log(str(log))
    _assert_series(log_parse.parse_log(str(log)), expected)
    out = tmp_path / "plots"
    assert _eval_visual().main(["--log-dir", str(log), "--out", str(out)]) == 0
    assert "train: 3 epoch(s), best top-1 40.00% at epoch 2" in capsys.readouterr().out
    for name in ("acc_plot.png", "loss_plot.png"):
        _assert_png(str(out / name))


def test_worker_logs_use_workerlog0(tmp_path):
    expected = _write_log(str(tmp_path / "log" / "workerlog.0"), seed=1)
    _write_log(str(tmp_path / "log" / "workerlog.1"), seed=2)
    (tmp_path / "log" / "endpoints.log").write_text("PADDLE_TRAINER_ENDPOINTS=127.0.0.1:6170\n")
    runs = log_parse.load_runs([str(tmp_path / "log")])
    # a launch "log" folder is named after the folder above it
    assert [r.label for r in runs] == [tmp_path.name] and runs[0].path.endswith("workerlog.0")
    _assert_series(runs[0], expected)


def test_two_runs_side_by_side_and_subprocess(tmp_path):
    exp_a = _write_log(str(tmp_path / "runs" / "dla60" / "log" / "workerlog.0"), seed=3)
    exp_b = _write_log(str(tmp_path / "runs" / "rexnet" / "train.log"), seed=4, epochs=2,
                       end_train=False)
    runs = log_parse.load_runs([str(tmp_path / "runs")])
    assert [r.label for r in runs] == ["dla60", "rexnet"]
    _assert_series(runs[0], exp_a)
    _assert_series(runs[1], exp_b)
    # the same runs given as two --log-dir, through the command line
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_visual.py"),
                        "--log-dir", str(tmp_path / "runs" / "dla60" / "log"),
                        "--log-dir", str(tmp_path / "runs" / "rexnet"), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "dla60: 3 epoch(s)" in r.stdout and "rexnet: 2 epoch(s)" in r.stdout
    for name in ("acc_plot.png", "loss_plot.png"):
        _assert_png(str(out / name))


def test_line_variants():
    # the engine's END line when the epoch has 4 digits, colour codes, an unknown extra field
    kind, epoch, fields = log_parse.parse_line(
        "\x1b[32m2021-04-15 11:15:47 INFO:\x1b[0m END epoch:1000valid top1: 0.5, top5: 0.75, "
        "loss: 2.0, new_field: 3")
    assert (kind, epoch, fields["top1"], fields["top5"], fields["new_field"]) == \
        ("valid_end", 1000, 0.5, 0.75, 3.0)
    assert log_parse.parse_line("INFO: epoch:2  , train step:30  , loss: 1.5e-1, lr: 1e-3")[2] == \
        {"step": 30.0, "loss": 0.15, "lr": 0.001}
    assert log_parse.parse_line("INFO: epoch:2  , valid step:30  , top1: 0.1") is None
    assert log_parse.parse_line("INFO: Already save model in ./output/DLA60/2") is None


def test_end_lines_only():
    run = log_parse.parse_lines([_train_end_line(0, 2.5, 0.1), _valid_line(0, 0.3, 0.6, 2.0),
                                 _train_end_line(1, 1.5, 0.05), _valid_line(1, 0.4, 0.7, 1.8)])
    assert run.train_loss() == ([0, 1], [2.5, 1.5])
    assert run.learning_rate() == ([0, 1], [0.1, 0.05])
    assert run.valid("top1") == ([0, 1], [0.3, 0.4])


def test_unparsable_log_gives_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "notes.log"
    bad.write_text("hello\nthis is not a training log\n")
    with pytest.raises(log_parse.LogParseError) as e:
        log_parse.parse_log(str(bad))
    assert str(bad) in str(e.value) and "epoch:0  , train step:10" in str(e.value)
    assert _eval_visual().main(["--log-dir", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "END epoch:0   valid top1" in err
    assert not (tmp_path / "acc_plot.png").exists()
    assert _eval_visual().main(["--log-dir", str(tmp_path / "missing")]) == 2
    assert "no such log file or folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- model zoo table
def _stub_counts(name):
    return flops.Counts(params=1234567, macs=2345678901, name=name)


def test_zoo_block_render_and_replace(tmp_path):
    _require("ResNet50")
    rows = model_zoo.zoo_rows(["ResNet50"], _stub_counts, root=str(tmp_path))
    assert rows[0]["config"] is None
    (tmp_path / "configs" / "ResNet").mkdir(parents=True)
    (tmp_path / "configs" / "ResNet" / "ResNet50.yaml").write_text("mode: train\n")
    rows = model_zoo.zoo_rows(["ResNet50"], _stub_counts, root=str(tmp_path))
    block = model_zoo.render_zoo_block(rows)
    assert block.startswith(model_zoo.ZOO_START) and block.endswith(model_zoo.ZOO_END)
    assert ("| ResNet | ResNet50 | 1.23 | 2.346 | — | "
            "[ResNet50.yaml](configs/ResNet/ResNet50.yaml) |") in block
    doc = model_zoo.render_zoo_doc(rows)
    assert "(../configs/ResNet/ResNet50.yaml)" in doc
    # README: the block is replaced in place, text around it kept
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\nintro\n\n{model_zoo.ZOO_START}\nold table\n{model_zoo.ZOO_END}\n\nmore\n")
    updates = model_zoo.zoo_updates(rows, str(tmp_path))
    current, expected = updates["README.md"]
    assert expected == f"# Title\n\nintro\n\n{block}\n\nmore\n"
    assert model_zoo.extract_block(expected) == block
    assert updates[model_zoo.ZOO_DOC] == (None, doc)
    assert "old table" in model_zoo.unified_diff(current, expected, "README.md")
    assert "README_cn.md" not in updates
    readme.write_text("# Title without markers\n")
    assert model_zoo.zoo_updates(rows, str(tmp_path))["README.md"] == \
        ("# Title without markers\n", None)


def test_gen_model_zoo_cli_write_then_check(tmp_path, counts, monkeypatch, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import gen_model_zoo
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(flops, "count_model", lambda name, *a, **k: counts(name))
    (tmp_path / "README.md").write_text(f"# x\n{model_zoo.ZOO_START}\n{model_zoo.ZOO_END}\n")
    assert gen_model_zoo.main(["--check", "--root", str(tmp_path), "-q"]) == 1
    assert "differs from the generated table" in capsys.readouterr().err
    assert gen_model_zoo.main(["--write", "--root", str(tmp_path), "-q"]) == 0
    assert gen_model_zoo.main(["--check", "--root", str(tmp_path), "-q"]) == 0
    text = (tmp_path / "README.md").read_text()
    table = [ln for ln in model_zoo.extract_block(text).splitlines() if ln.startswith("| ")]
    assert [ln.split(" | ")[1] for ln in table[1:]] == model_zoo.registered_in_order()
    assert (tmp_path / "docs" / "model_zoo.md").exists()


@pytest.fixture(scope="module")
def zoo_rows(counts):
    return model_zoo.zoo_rows(counts_fn=counts)


def test_docs_model_zoo_is_generated(zoo_rows):
    path = os.path.join(ROOT, model_zoo.ZOO_DOC)
    assert os.path.exists(path), "run `python tools/gen_model_zoo.py --write`"
    with open(path, encoding="utf-8") as f:
        assert f.read() == model_zoo.render_zoo_doc(zoo_rows), \
            "docs/model_zoo.md is stale: run `python tools/gen_model_zoo.py --write`"


def test_readme_table_is_generated(zoo_rows):
    path = os.path.join(ROOT, "README.md")
    if not os.path.exists(path):
        pytest.skip("README.md does not exist yet")
    with open(path, encoding="utf-8") as f:
        block = model_zoo.extract_block(f.read())
    if block is None:
        pytest.skip(f"README.md has no {model_zoo.ZOO_START} / {model_zoo.ZOO_END} markers yet")
    assert block == model_zoo.render_zoo_block(zoo_rows), \
        "README.md's model zoo table is stale: run `python tools/gen_model_zoo.py --write`"

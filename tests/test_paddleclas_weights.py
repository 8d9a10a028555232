"""PaddleClas's own ``.pdparams`` (tests/fixtures/parity_paddleclas, see its README): ResNet and
ResNeXt convert to PaddleClas's logits within 1e-5, DLA and ReXNet load as they are, the other
networks are refused with the reason; the naming is detected (official, timm, PaddleClas, ours);
release/2.0's older namings; tools/convert_weights.py and the engine's pretrained_model path."""
import functools
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

from conftest import write_code_running_pdparams
from parity import (FIXTURES, PADDLECLAS_FIXTURES, assert_logits_close, fixture_input, load_fixture,
                    official_state_dict)
from test_rexnet import official_to_timm
from ppcls.analysis.flops import count_params, skip_random_init
from ppcls.convert import ConversionError, convert_checkpoint, detect_naming
from ppcls.modeling import build_model
from ppcls.utils import checkpoint as ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# PaddleClas model -> our model its weights convert into
CONVERTS = {"ResNet50": "ResNet50", "ResNet101": "ResNet101", "ResNet152": "ResNet152",
            "ResNeXt50_32x4d": "ResNeXt50_32x4d", "ResNeXt101_32x8d_wsl": "ResNeXt101_32x8d"}
AS_IS = ["DLA34", "DLA46_c", "DLA46x_c", "DLA60", "DLA60x", "DLA60x_c", "DLA102", "DLA102x",
         "DLA102x2", "DLA169", "ReXNet_1_0", "ReXNet_1_3", "ReXNet_1_5", "ReXNet_2_0", "ReXNet_3_0"]
# PaddleClas model -> (-a a user would give, what the refusal must say)
REFUSED = {"ResNet18": ("ResNet18", r"adds a 1x1 conv\+BN shortcut to the first block \(blocks\.0\.short\)"),
           "ResNet34": ("ResNet34", r"adds a 1x1 conv\+BN shortcut to the first block"),
           "MobileNetV2": ("MobileNetV2", r"expand conv in its first inverted-residual block"),
           "ResNet50_vd": ("ResNet50", r"three-conv 3x3 stem and average-pool shortcuts")}
LEGENDARY = "PaddleClas naming (stem.0.conv..., blocks.K...)"


@functools.lru_cache(maxsize=None)
def pc_fixture(name):
    return load_fixture(f"paddleclas_{name}", PADDLECLAS_FIXTURES)


_WEIGHTS = {}
REUSED = ("ResNet50", "ResNet101", "ResNeXt50_32x4d", "DLA46_c")   # several tests load these


def pc_weights(name):
    """The fixture's PaddleClas state dict by its weight rule (shared: do not modify)."""
    if name in _WEIGHTS:
        return _WEIGHTS[name]
    weights = official_state_dict(pc_fixture(name))
    if name in REUSED:
        _WEIGHTS[name] = weights
    return weights


def pc_zeros(name):
    """Names and shapes only, for the tests that never run the model."""
    return {n: np.zeros(shape, np.float32) for n, shape in pc_fixture(name)["params"]}


_MODELS = {}


def model_for(arch):
    """Our model with zero weights (every tensor is overwritten by the fixture's), built once
    for the module when several tests load into it."""
    if arch in _MODELS:
        return _MODELS[arch]
    with skip_random_init():
        model = build_model(arch, class_dim=1000)
    if arch in REUSED:
        _MODELS[arch] = model
    return model


def logits(model, fixture):
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(fixture_input(fixture))).numpy()


def expected(fixture):
    return np.asarray(fixture["output"], dtype=np.float32)


def test_every_fixture_is_covered():
    names = {os.path.basename(p)[len("paddleclas_"):-len(".json")]
             for p in glob.glob(os.path.join(PADDLECLAS_FIXTURES, "paddleclas_*.json"))}
    assert names == set(CONVERTS) | set(AS_IS) | set(REFUSED)


# ---------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize("name", sorted(CONVERTS))
def test_paddleclas_resnet_resnext_convert_to_its_logits(name):
    fixture, arch = pc_fixture(name), CONVERTS[name]
    model = model_for(arch)
    state, report = convert_checkpoint(name, pc_weights(name), source=name, model=model)
    assert (report["naming"], report["arch"], report["paddleclas_model"]) == ("paddleclas", arch, name)
    assert report["class_dim"] == 1000 and report["converted"] == len(fixture["params"])
    assert not report["no_conversion_needed"] and report["dropped"] == {}
    model.set_state_dict(state)
    assert count_params(model) == fixture["num_parameters"]
    err = assert_logits_close(logits(model, fixture), expected(fixture))
    print(f"PaddleClas {name} -> {arch}: max relative logit error {err:.2g}")


@pytest.mark.parametrize("name", AS_IS)
def test_paddleclas_dla_rexnet_load_as_they_are(name):
    fixture = pc_fixture(name)
    weights = pc_weights(name)
    model = model_for(name)
    usable, _ = ckpt.fit_state_dict(model, weights, name)     # the engine's check: every key fits
    assert usable.keys() == weights.keys()
    model.set_state_dict(usable)
    assert count_params(model) == fixture["num_parameters"]
    err = assert_logits_close(logits(model, fixture), expected(fixture))
    print(f"PaddleClas {name} as it is: max relative logit error {err:.2g}")
    # the converter says so and passes them through unchanged
    state, report = convert_checkpoint(name, weights, source=name, model=model)
    assert report["naming"] == "suite" and report["no_conversion_needed"]
    assert "as PaddleClas's DLA and ReXNet .pdparams have" in report["naming_label"]
    assert state.keys() == weights.keys()
    assert all(np.array_equal(state[k], weights[k]) for k in weights)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_other_paddleclas_networks_are_refused_from_the_weights(name):
    weights = pc_zeros(name)
    arch, reason = REFUSED[name]
    for a in sorted({arch, "ResNet50", "DLA34"}):       # whatever -a says, the weights decide
        with pytest.raises(ConversionError, match=reason) as err:
            convert_checkpoint(a, weights, source=f"{name}.pdparams")
        assert str(err.value).startswith(f"{name}.pdparams: PaddleClas's ")
        assert str(err.value).endswith("; PaddleClas weights that convert: ResNet50/101/152, "
                                       "ResNeXt50_32x4d and ResNeXt101_32x8d_wsl; that load as "
                                       "they are: DLA34-DLA169 and ReXNet_1_0-ReXNet_3_0")
        assert "\n" not in str(err.value)
        for naming in ("auto", "paddleclas"):
            with pytest.raises(ConversionError, match=reason):
                convert_checkpoint(a, weights, naming=naming, source=name)


@pytest.mark.parametrize("arch, reason", [
    ("ResNet50_vd", r"^ResNet50_vd: PaddleClas's _vd models .* three-conv 3x3 stem"),
    ("ResNeXt50_vd_32x4d", r"^ResNeXt50_vd_32x4d: PaddleClas's _vd models"),
    ("MobileNetV2_x0_5", r"^MobileNetV2_x0_5: PaddleClas's MobileNetV2 has an expand conv"),
    ("ResNeXt101_32x16d_wsl", r"no such model .* only ResNeXt101_32x8d_wsl converts"),
    ("ResNet51", r"unknown architecture 'ResNet51'; did you mean"),
])
def test_paddleclas_only_arch_names_are_refused(arch, reason):
    with pytest.raises(ConversionError, match=reason):
        convert_checkpoint(arch, {"fc.weight": np.zeros((2, 2), np.float32)})


def test_weights_of_another_depth_or_family_name_the_right_arch():
    r101 = pc_zeros("ResNet101")
    with pytest.raises(ConversionError, match=r"^R101.pdparams: these are PaddleClas ResNet101 "
                                              r"weights, not ResNet50: use -a ResNet101$"):
        convert_checkpoint("ResNet50", r101, source="R101.pdparams")
    with pytest.raises(ConversionError, match=r"not DLA34: use -a ResNet101"):
        convert_checkpoint("DLA34", r101, naming="paddleclas")
    wsl = pc_zeros("ResNeXt101_32x8d_wsl")
    with pytest.raises(ConversionError, match=r"ResNeXt101_32x8d_wsl weights, not ResNet101: "
                                              r"use -a ResNeXt101_32x8d_wsl"):
        convert_checkpoint("ResNet101", wsl)
    # ResNeXt50_64x4d (PaddleClas has it, we do not): read from the grouped 3x3 width
    x50 = pc_zeros("ResNeXt50_32x4d")
    x64 = {k: (np.zeros((256, 4, 3, 3), np.float32) if k == "bb_0_0.conv1._conv.weight" else v)
           for k, v in x50.items()}
    with pytest.raises(ConversionError, match=r"PaddleClas ResNeXt50_64x4d weights, this suite "
                                              r"has no such model; PaddleClas weights that convert"):
        convert_checkpoint("ResNeXt50_32x4d", x64)


def test_unknown_paddleclas_networks_are_refused():
    hrnet_like = {"conv_1._conv.weight": np.zeros((4, 3, 3, 3), np.float32),
                  "conv_1._batch_norm._mean": np.zeros(4, np.float32)}
    with pytest.raises(ConversionError, match=r"PaddleClas layer names .* no network the "
                                              r"converter knows \(first key 'conv_1._conv.weight'\)"):
        convert_checkpoint("ResNet50", hrnet_like)


def test_paddleclas_resnext_with_extra_layers_is_refused():
    se_resnext = dict(pc_zeros("ResNeXt50_32x4d"))
    se_resnext["bb_0_0.scale.squeeze.weight"] = np.zeros((256, 16), np.float32)
    with pytest.raises(ConversionError, match=r"'bb_0_0.scale.squeeze.weight' is a layer that "
                                              r"torchvision's ResNet/ResNeXt \(ours\) do not have"):
        convert_checkpoint("ResNeXt50_32x4d", se_resnext, naming="paddleclas")


def test_class_count_comes_from_the_paddle_layout_head():
    weights = dict(pc_weights("ResNet50"))
    weights["fc.weight"] = weights["fc.weight"][:, :10]            # Paddle Linear: [in, out]
    weights["fc.bias"] = weights["fc.bias"][:10]
    with skip_random_init():
        state, report = convert_checkpoint("ResNet50", weights)
    assert report["class_dim"] == 10
    assert np.array_equal(state["fc.weight"], weights["fc.weight"])  # no transpose


# ---------------------------------------------------------------------------- release/2.0 namings
# Written from release/2.0's ppcls/modeling/architectures/resnet.py and resnext.py, not from the
# converter: sublayers res{stage}{a,b,c...} (res4a, res4b1... in ResNet101/152's third stage),
# conv0/1/2 + short of ConvBNLayer(_conv, _batch_norm), stem `conv`, classifier `out`; parameter
# names <block>_branch2a/2b/2c/1_weights and bn<block[3:]>_branch.._scale/_offset/_mean/_variance,
# conv1_weights / bn_conv1_* (ResNeXt: res_conv1_weights), fc_0.w_0 / fc_0.b_0 (ResNeXt: fc_weights).
def _release20_blocks(depth):
    names = []
    for stage, n in enumerate(depth):
        for i in range(n):
            if depth[2] > 6 and stage == 2:
                names.append("res4a" if i == 0 else f"res4b{i}")
            else:
                names.append(f"res{stage + 2}{chr(97 + i)}")
    return names


_BRANCH = {"conv0": "2a", "conv1": "2b", "conv2": "2c", "short": "1"}
_BN_PARAM = {"weight": "scale", "bias": "offset", "_mean": "mean", "_variance": "variance"}


def legendary_to_release20(weights, depth, static=False):
    blocks = _release20_blocks(depth)
    out = {}
    for name, value in weights.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(conv[012]|short)\.(conv|bn)\.(.+)", name)
        if m:
            block, layer, kind, param = blocks[int(m[1])], m[2], m[3], m[4]
            if not static:
                new = f"{block}.{layer}.{'_conv' if kind == 'conv' else '_batch_norm'}.{param}"
            elif kind == "conv":
                new = f"{block}_branch{_BRANCH[layer]}_weights"
            else:
                new = f"bn{block[3:]}_branch{_BRANCH[layer]}_{_BN_PARAM[param]}"
        elif name.startswith("stem.0."):
            kind, param = name.split(".")[2:]
            if not static:
                new = f"conv.{'_conv' if kind == 'conv' else '_batch_norm'}.{param}"
            else:
                new = "conv1_weights" if kind == "conv" else f"bn_conv1_{_BN_PARAM[param]}"
        else:
            new = ("fc_0.w_0" if name == "fc.weight" else "fc_0.b_0") if static else "out." + name[3:]
        out[new] = value
    return out


@pytest.mark.parametrize("static", [False, True], ids=["dygraph", "static"])
def test_release20_resnet_namings_convert(static):
    fixture = pc_fixture("ResNet101")
    old = legendary_to_release20(pc_weights("ResNet101"), (3, 4, 23, 3), static)
    anchors = ({"bn4b22_branch2c_variance", "res4a_branch1_weights", "res5c_branch2b_weights",
                "bn_conv1_offset", "fc_0.w_0"} if static else
               {"res4b22.conv2._batch_norm._variance", "res4a.short._conv.weight",
                "res5c.conv1._conv.weight", "conv._batch_norm.bias", "out.weight"})
    assert anchors <= set(old)
    model = model_for("ResNet101")
    state, report = convert_checkpoint("ResNet101", old, model=model)
    assert report["paddleclas_model"] == "ResNet101"
    assert report["naming_label"] == ("PaddleClas static-graph parameter names (conv1_weights, "
                                      "res2a_branch2a_weights...)" if static else
                                      "PaddleClas release/2.0 naming (conv._conv..., res2a.conv0...)")
    model.set_state_dict(state)
    assert_logits_close(logits(model, fixture), expected(fixture))


def test_release20_resnext_static_names_convert():
    fixture = pc_fixture("ResNeXt50_32x4d")
    blocks = _release20_blocks((3, 4, 6, 3))
    starts = np.cumsum([0, 3, 4, 6])
    old = {}
    for name, value in pc_weights("ResNeXt50_32x4d").items():
        m = re.fullmatch(r"bb_(\d)_(\d+)\.(conv[012]|short)\.(_conv|_batch_norm)\.(.+)", name)
        if m:
            block = blocks[starts[int(m[1])] + int(m[2])]
            branch = _BRANCH[m[3]]
            new = (f"{block}_branch{branch}_weights" if m[4] == "_conv" else
                   f"bn{block[3:]}_branch{branch}_{_BN_PARAM[m[5]]}")
        elif name.startswith("conv."):
            new = ("res_conv1_weights" if "._conv." in name else
                   f"bn_conv1_{_BN_PARAM[name.split('.')[-1]]}")
        else:
            new = {"out.weight": "fc_weights", "out.bias": "fc_offset"}[name]
        old[new] = value
    assert {"res_conv1_weights", "bn5c_branch2c_scale", "fc_offset"} <= set(old)
    model = model_for("ResNeXt50_32x4d")
    state, report = convert_checkpoint("ResNeXt50_32x4d", old, naming="paddleclas", model=model)
    model.set_state_dict(state)
    assert_logits_close(logits(model, fixture), expected(fixture))


def test_resnet18_without_the_first_block_shortcut_converts():
    """PaddleClas 2.x ResNet18 with use_first_short_conv=False is torchvision's ResNet18: the
    weights decide. Built here from the torchvision fixture in PaddleClas's 2.x names."""
    tv = load_fixture("tv_resnet18")
    starts = np.cumsum([0, 2, 2, 2])
    weights = {}
    for name, value in official_state_dict(tv).items():
        name = re.sub(r"running_mean$", "_mean", re.sub(r"running_var$", "_variance", name))
        m = re.fullmatch(r"layer(\d)\.(\d)\.(conv|bn|downsample\.)(\d)\.(.+)", name)
        if m:
            k = starts[int(m[1]) - 1] + int(m[2])
            if m[3] == "downsample.":
                new = f"blocks.{k}.short.{'conv' if m[4] == '0' else 'bn'}.{m[5]}"
            else:
                new = f"blocks.{k}.conv{int(m[4]) - 1}.{m[3]}.{m[5]}"
        elif name.startswith(("conv1.", "bn1.")):
            new = "stem.0." + ("conv." if name.startswith("conv1") else "bn.") + name.split(".", 1)[1]
        else:
            new, value = name, (value.T if name == "fc.weight" else value)   # Paddle layout
        weights[new] = value
    assert "blocks.0.short.conv.weight" not in weights and "blocks.2.short.conv.weight" in weights
    model = model_for("ResNet18")
    state, report = convert_checkpoint("ResNet18", weights, model=model)
    assert report["naming_label"] == LEGENDARY and report["paddleclas_model"] == "ResNet18"
    model.set_state_dict(state)
    assert_logits_close(logits(model, tv), expected(tv))


# ---------------------------------------------------------------------------- naming detection
def test_naming_detection():
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        with open(path) as f:
            names = [n for n, _ in json.load(f)["params"]]
        assert detect_naming(names).kind == "official", path
    rexnet = official_state_dict(load_fixture("rexnet_1.0"))
    assert detect_naming(official_to_timm(rexnet)).kind == "timm"
    labels = {name: detect_naming(n for n, _ in pc_fixture(name)["params"])
              for name in list(CONVERTS) + list(REFUSED)}
    assert {n.kind for n in labels.values()} == {"paddleclas"}
    assert labels["ResNet152"].label == LEGENDARY
    assert labels["ResNeXt50_32x4d"].label == "PaddleClas naming (conv._conv..., bb_S_J.convN...)"
    assert labels["ResNeXt101_32x8d_wsl"].label == "PaddleClas naming (_conv_stem..., _convS_J._convN...)"
    assert labels["MobileNetV2"].label.startswith("PaddleClas MobileNetV2 naming")
    for name in AS_IS:
        assert detect_naming(n for n, _ in pc_fixture(name)["params"]).kind == "suite"


@pytest.mark.parametrize("arch", ["DLA46_c", "ReXNet_lite_1_0", "ResNet18", "ECA_ResNet18",
                                  "ECA_MobileNetV2", "RLA_MobileNetV2", "ED_ResNet50"])
def test_our_own_names_are_detected_as_ours(arch):
    with skip_random_init():
        names = build_model(arch, class_dim=10).state_dict().keys()
    assert detect_naming(names).kind == "suite"


def test_explicit_naming_must_match_the_layout():
    paddleclas = pc_zeros("ResNet50")
    with pytest.raises(ConversionError, match=r"--from official, but .* has PaddleClas naming "
                                              r".*: use --from paddleclas \(or auto\)"):
        convert_checkpoint("ResNet50", paddleclas, naming="official")
    tv = {n: np.zeros(s, np.float32) for n, s in load_fixture("tv_resnet50")["params"]}
    with pytest.raises(ConversionError, match=r"--from paddleclas, but .* has official PyTorch "
                                              r"naming .*: use --from official \(or auto\)"):
        convert_checkpoint("ResNet50", tv, naming="paddleclas")
    with pytest.raises(ConversionError, match=r"unknown --from 'caffe'"):
        convert_checkpoint("ResNet50", tv, naming="caffe")


# ---------------------------------------------------------------------------- CLI and engine
def save_like_paddleclas(weights, path):
    """As PaddleClas writes them: paddle.save of the model's tensors (with its name table)."""
    paddle.save({k: paddle.to_tensor(v) for k, v in weights.items()}, str(path))
    return str(path)


def run_tool(monkeypatch, capsys, *args):
    from ppcls.cli import convert_weights
    monkeypatch.setattr(sys, "argv", ["convert_weights.py", *args])
    code = 0
    try:
        convert_weights.cli_main()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_converts_paddleclas_resnet50(tmp_path, monkeypatch, capsys):
    fixture = pc_fixture("ResNet50")
    src = save_like_paddleclas(pc_weights("ResNet50"), tmp_path / "ResNet50_pretrained.pdparams")
    dst = tmp_path / "out" / "ResNet50.pdparams"
    code, out, err = run_tool(monkeypatch, capsys, "-a", "ResNet50", "--src", src, "--dst", str(dst))
    assert code == 0, err
    assert f"{src}: detected {LEGENDARY}\n" in out
    assert "ResNet50: converted 267 tensors (1000 classes)" in out
    assert f"-o pretrained_model={tmp_path / 'out' / 'ResNet50'}" in out
    model = model_for("ResNet50")
    ckpt.load_pretrained(model, str(dst)[: -len(".pdparams")])     # the engine's loader
    assert_logits_close(logits(model, fixture), expected(fixture))


def test_cli_passes_paddleclas_dla_through(tmp_path, monkeypatch, capsys):
    weights = pc_weights("DLA46_c")
    src = save_like_paddleclas(weights, tmp_path / "DLA46_c_pretrained.pdparams")
    dst = tmp_path / "DLA46_c.pdparams"
    code, out, err = run_tool(monkeypatch, capsys, "-a", "DLA46_c", "--src", src, "--dst", str(dst),
                              "--from", "paddleclas")
    assert code == 0, err
    assert (f"DLA46_c: no conversion needed, {src} already has this suite's names (242 tensors "
            f"checked against DLA46_c, 1000 classes) and loads as is with -o pretrained_model="
            f"{src[:-len('.pdparams')]}; wrote a copy to {dst}") in out
    copy = ckpt.load_params_file(str(dst))
    assert copy.keys() == weights.keys() and all(np.array_equal(copy[k], weights[k]) for k in weights)


def test_cli_refusals_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    mbv2 = save_like_paddleclas(pc_zeros("MobileNetV2"), tmp_path / "m.pdparams")
    dst = tmp_path / "o.pdparams"
    code, out, err = run_tool(monkeypatch, capsys, "-a", "MobileNetV2", "--src", mbv2, "--dst", str(dst))
    assert code == 2 and err.startswith(f"error: {mbv2}: PaddleClas's MobileNetV2 has an expand conv")
    assert err.count("\n") == 1 and not dst.exists()
    code, _, err = run_tool(monkeypatch, capsys, "-a", "ResNet50", "--src", mbv2, "--dst", str(dst),
                            "--from", "official")
    assert code == 2 and "use --from paddleclas (or auto)" in err


def test_cli_process_exit_code_and_message(tmp_path):
    """The real process: a _vd architecture name is refused with exit code 2, no traceback."""
    src = tmp_path / "x.npz"
    np.savez(src, w=np.zeros(1, np.float32))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools/convert_weights.py"),
                           "-a", "ResNet50_vd", "--src", str(src), "--dst", str(tmp_path / "o.pdparams")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]         # (Paddle may warn on import before it)
    assert last.startswith("error: ResNet50_vd: PaddleClas's _vd models") and "Traceback" not in proc.stderr


def test_engine_loads_paddleclas_dla_with_pretrained_model(tmp_path, tiny_cfg):
    """`-o pretrained_model=` on PaddleClas's DLA file as it is: evaluation, and fine-tuning to
    another class count (the classifier is re-initialised, the rest loaded)."""
    from ppcls.engine.evaluate import run_eval
    from ppcls.engine.finetune import load_pretrained_for_finetune
    weights = pc_weights("DLA46_c")
    prefix = save_like_paddleclas(weights, tmp_path / "DLA46_c_pretrained.pdparams")[: -len(".pdparams")]
    metrics = run_eval(tiny_cfg(n_val=20, extra=["ARCHITECTURE.name=DLA46_c", "classes_num=1000",
                                                 f"pretrained_model={prefix}"]))
    assert 0.0 <= metrics["top1"] <= 1.0
    with skip_random_init():
        model = build_model("DLA46_c", class_dim=10)
    report = load_pretrained_for_finetune(model, prefix, 10)
    assert {k for k, _ in report["reinitialised"]} == {"fc.weight", "fc.bias"}
    assert np.array_equal(model.state_dict()["base_layer.0.weight"].numpy(),
                          weights["base_layer.0.weight"])


def test_static_graph_archives_are_refused(tmp_path):
    import tarfile
    from ppcls.convert import load_source
    folder = tmp_path / "ResNet50_pretrained"
    folder.mkdir()
    (folder / "res2a_branch2a_weights").write_bytes(b"\0" * 16)
    with tarfile.open(tmp_path / "ResNet50_pretrained.tar", "w") as tar:
        tar.add(folder, arcname="ResNet50_pretrained")
    for path in (folder, tmp_path / "ResNet50_pretrained.tar"):
        with pytest.raises(ConversionError, match=r"PaddleClas 1.x static-graph weights.* use the "
                                                  r".pdparams file PaddleClas 2.x publishes"):
            load_source(str(path))


def test_pdparams_sources_keep_the_pickle_allow_list(tmp_path, monkeypatch):
    from ppcls.convert import load_source
    monkeypatch.chdir(tmp_path)
    write_code_running_pdparams(tmp_path / "evil.pdparams")
    with pytest.raises(ckpt.CheckpointError, match=r"refusing to load .*evil\.pdparams: it calls "
                                                   r"(posix|os)\.system"):
        load_source(str(tmp_path / "evil"))                   # a prefix, as pretrained_model takes
    assert not (tmp_path / "pwned").exists()


def test_pretrained_model_with_paddleclas_names_points_to_the_converter(tmp_path):
    prefix = save_like_paddleclas(pc_zeros("ResNet50"),
                                  tmp_path / "ResNet50_pretrained.pdparams")[: -len(".pdparams")]
    with pytest.raises(ckpt.CheckpointError, match=r"most of the model's keys are not in the file: "
                                                   r".* to convert first with tools/convert_weights.py"):
        ckpt.load_pretrained(model_for("ResNet50"), prefix)

"""Export (tools/export_model.py) and the predictor (tools/infer.py): Paddle Inference and ONNX
Runtime reproduce the dygraph model, the predictor's preprocessing is the eval pipeline's, its
top-1 equals tools/eval.py's, and bad input fails with one clear line."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

from ppcls.data.dataset import ClassificationDataset
from ppcls.inference import InferenceError, Predictor, export, export_ops
from ppcls.inference.export import rel_err
from ppcls.inference.weights import head_axes, load_model_for_export
from ppcls.modeling import build_model, list_models
from ppcls.utils.checkpoint import CheckpointError
from ppcls.utils.cli import run_cli
from ppcls.engine.recipe import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CFG = os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")
# one model per family; ED at 32x32, a size its decoders accept
FAMILIES = ["DLA46_c", "ResNet18", "ReXNet_lite_1_0", "ED_ResNet50", "ECA_ResNet18",
            "RLA_MobileNetV2", "MobileNetV2"]


def onnx_skip_reason():
    for module, what in (("paddle2onnx", "paddle2onnx"), ("onnxruntime", "onnxruntime")):
        try:
            __import__(module)
        except ImportError:
            return f"{what} is not installed (optional: pip install paddle2onnx onnxruntime)"
    return None


def run_tool(args, cwd, env=None):
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def call_tool(module, argv, monkeypatch, capsys):
    """Run a tool's main() in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    code = 0
    try:
        run_cli(module.main)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(code, err):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines and lines[0].startswith("error: "), err
    return lines[0]


def digit_paths(digits_dir):
    """The first image of every digit: ten different inputs."""
    return [os.path.join(digits_dir, "images", str(d), sorted(os.listdir(
        os.path.join(digits_dir, "images", str(d))))[0]) for d in range(10)]


def demo_cfg(digits_dir, *extra):
    return load_config(DEMO_CFG, [f"TRAIN.data_dir={digits_dir}", f"VALID.data_dir={digits_dir}",
                                  f"VALID.file_list={digits_dir}/val_list.txt",
                                  f"VALID.label_list={digits_dir}/label_list.txt", *extra])


def make_informative(model, name, x, seed=0):
    """Random BN affine parameters, BN statistics of ``x`` plus noisy copies and noise images, and
    a classifier scaled to logits of std 1.5: the softmax differs per image and per class (neither
    uniform nor one-hot), so a wrong program cannot pass the comparisons. (Statistics of the ten
    images alone normalise their tiny differences up to unit scale and amplify float32 rounding
    far beyond a trained network's.)"""
    rng = np.random.RandomState(seed)
    bns = [l for l in model.sublayers() if isinstance(l, paddle.nn.layer.norm._BatchNormBase)]
    for bn in bns:
        c = bn.weight.shape[0]
        bn.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
        bn.bias.set_value(rng.normal(0, 0.2, c).astype("float32"))
        bn._momentum = 0.0                   # running statistics := this batch's
    noise = rng.standard_normal((2 * len(x),) + x.shape[1:]).astype("float32")
    calib = np.concatenate([x, x + 0.5 * noise[:len(x)], noise])
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(calib))
    for bn in bns:
        bn._momentum = 0.9
    model.eval()
    with paddle.no_grad():
        scale = 1.5 / max(float(model(paddle.to_tensor(x)).numpy().std()), 1e-6)
        heads = head_axes(name)
        for key, value in model.state_dict().items():
            if key in heads:
                value.set_value(value * scale)


@pytest.fixture(scope="module")
def family_exports(digits_dir, tmp_path_factory):
    """name -> (export dir, dygraph model, preprocessed batch, weights); exported once."""
    cache = {}
    root = tmp_path_factory.mktemp("exports")

    def get(name):
        if name not in list_models():
            pytest.skip(f"{name} is not registered yet")
        if name not in cache:
            cfg = demo_cfg(digits_dir)
            pred_ops = export_ops(cfg.VALID.transforms, cfg._source)
            lines = [f"{os.path.relpath(p, digits_dir)} {i}" for i, p in enumerate(digit_paths(digits_dir))]
            (root / "ten.txt").write_text("\n".join(lines) + "\n")
            dataset = ClassificationDataset(digits_dir, str(root / "ten.txt"), cfg.VALID.transforms, 10)
            batch = np.stack([dataset[i][0] for i in range(len(dataset))])
            paddle.seed(0)
            model = build_model(name, class_dim=10)
            make_informative(model, name, batch)
            weights = str(root / f"{name}_weights")
            paddle.save(model.state_dict(), weights + ".pdparams")
            loaded, n = load_model_for_export(name, weights)       # class count from the file
            assert n == 10
            out = str(root / name)
            export(loaded, out, pred_ops, [f"digit_{i}" for i in range(10)], name,
                   onnx=onnx_skip_reason() is None, weights=weights, log=lambda *a: None)
            cache[name] = (out, model, batch, weights)
        return cache[name]
    return get


def dygraph_probs(model, batch):
    with paddle.no_grad():
        return paddle.nn.functional.softmax(model(paddle.to_tensor(batch)), axis=-1).numpy()


def check_close(got, ref):
    """Within 1e-4 relative to the largest probability, same top-1."""
    assert got.shape == ref.shape == (10, 10)
    assert rel_err(got, ref) <= 1e-4, rel_err(got, ref)
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("name", FAMILIES)
def test_paddle_inference_equals_dygraph(name, family_exports, digits_dir):
    out, model, batch, _ = family_exports(name)
    ref = dygraph_probs(model, batch)
    assert ref.max(1).min() < 0.99 and len(set(ref.argmax(1))) >= 2     # informative outputs
    pred = Predictor(out, "paddle", use_gpu=False, cpu_threads=1, batch_size=10)
    # the predictor's preprocessing is the eval pipeline's, bit for bit
    mine = np.stack([pred.preprocess(p) for p in digit_paths(digits_dir)])
    np.testing.assert_array_equal(mine, batch)
    check_close(pred.run(batch), ref)
    results = pred.predict([(p, None) for p in digit_paths(digits_dir)], topk=3)
    assert [r["class_ids"][0] for r in results] == list(ref.argmax(1))
    assert results[0]["label_names"][0] == f"digit_{ref.argmax(1)[0]}"
    info = yaml.safe_load(open(os.path.join(out, "inference.yml")))
    assert info["Global"]["class_num"] == 10
    shape = info["Global"]["input_shape"]
    # dynamic batch; dynamic H/W except ED (Paddle's static shape inference of its transposed
    # convs fails on symbolic sizes, so the export falls back to the crop size)
    assert shape == ([-1, 3, 32, 32] if name.startswith("ED_") else [-1, 3, -1, -1])


@pytest.mark.parametrize("name", FAMILIES)
def test_onnxruntime_equals_dygraph(name, family_exports, digits_dir):
    reason = onnx_skip_reason()
    if reason:
        pytest.skip(reason)
    out, model, batch, _ = family_exports(name)
    pred = Predictor(out, "onnxruntime", use_gpu=False, cpu_threads=1, batch_size=10)
    check_close(pred.run(batch), dygraph_probs(model, batch))


def test_predictor_top1_equals_eval_tool(tiny_cfg, digits_dir, tmp_path):
    from ppcls.engine.evaluate import run_eval
    from ppcls.engine.train import train
    cfg = tiny_cfg(n_train=128, extra=["epochs=1", "validate=False"])
    train(cfg)
    weights = os.path.join(cfg.model_save_dir, "ResNet18", "0", "ppcls")
    full_val = [f"VALID.file_list={digits_dir}/val_list.txt", f"pretrained_model={weights}"]
    metrics = run_eval(tiny_cfg(extra=full_val))
    common = ["-o", "ARCHITECTURE.name=ResNet18", "-o", f"VALID.data_dir={digits_dir}",
              "-o", f"VALID.file_list={digits_dir}/val_list.txt",
              "-o", f"VALID.label_list={digits_dir}/label_list.txt", "-o", f"TRAIN.data_dir={digits_dir}"]
    exp = run_tool([os.path.join(ROOT, "tools/export_model.py"), "-c", DEMO_CFG, *common,
                    "-o", f"pretrained_model={weights}", "-o", f"save_inference_dir={tmp_path / 'inf'}",
                    *(["--onnx"] if onnx_skip_reason() is None else [])], cwd=tmp_path)
    assert exp.returncode == 0, exp.stdout[-2000:] + exp.stderr[-3000:]
    backends = ["paddle"] + (["onnxruntime"] if onnx_skip_reason() is None else [])
    for backend in backends:
        js = tmp_path / f"{backend}.json"
        inf = run_tool([os.path.join(ROOT, "tools/infer.py"), "--model_dir", str(tmp_path / "inf"),
                        "--image", f"{digits_dir}/val_list.txt", "--batch_size", "64", "-q",
                        "--backend", backend, "--save_json", str(js)], cwd=tmp_path)
        assert inf.returncode == 0, inf.stderr[-3000:]
        res = json.loads(js.read_text())
        n = res["accuracy"]["num_labeled"]
        assert n == metrics["num_samples"] == len(res["results"])
        assert round(res["accuracy"]["top1"] * n) == round(metrics["top1"] * n), backend
        assert res["results"][0]["label_names"][0].startswith("digit_")
        assert f"top1: {metrics['top1']:.5f}" in inf.stdout


def test_short_form_class_count_and_mismatches(tmp_path, monkeypatch, capsys):
    import tools.export_model as export_tool
    paddle.seed(0)
    weights = str(tmp_path / "r18")
    paddle.save(build_model("ResNet18", class_dim=10).state_dict(), weights + ".pdparams")
    code, out, err = call_tool(export_tool, ["-m", "ResNet18", "-p", weights, "-o",
                                             str(tmp_path / "inf"), "--class_dim", "10",
                                             "--resize_short", "36", "--crop", "32"],
                               monkeypatch, capsys)
    assert code == 0, err
    info = yaml.safe_load(open(tmp_path / "inf" / "inference.yml"))
    assert info["Global"]["class_num"] == 10 and info["PostProcess"]["label_list"][3] == "3"
    assert info["PreProcess"]["transform_ops"][1:3] == [
        {"ResizeImage": {"resize_short": 36, "interpolation": "bilinear"}},
        {"CropImage": {"size": [32, 32]}}]
    pred = Predictor(str(tmp_path / "inf"), cpu_threads=1)
    assert pred.run(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)
    # the checkpoint decides the class count; a different --class_dim fails, nothing is written
    code, _, err = call_tool(export_tool, ["-m", "ResNet18", "-p", weights, "-o",
                                           str(tmp_path / "x"), "--class_dim", "1000"],
                             monkeypatch, capsys)
    assert "has 10 classes (fc.weight [512, 10]) but --class_dim is 1000" in one_error_line(code, err)
    # weights of another architecture: the mismatched keys are named
    code, _, err = call_tool(export_tool, ["-m", "DLA46_c", "-p", weights, "-o", str(tmp_path / "x")],
                             monkeypatch, capsys)
    assert "does not fit DLA" in one_error_line(code, err) and "unexpected: layer1.0" in err
    code, _, err = call_tool(export_tool, ["-m", "ResNet18", "-p", str(tmp_path / "nope"), "-o",
                                           str(tmp_path / "x")], monkeypatch, capsys)
    assert "weights file not found" in one_error_line(code, err)
    code, _, err = call_tool(export_tool, ["-c", DEMO_CFG, "-o", f"save_inference_dir={tmp_path / 'x'}"],
                             monkeypatch, capsys)
    assert "export needs weights: -o pretrained_model=" in one_error_line(code, err)
    assert not (tmp_path / "x").exists()
    # an existing folder that is not an export is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, _, err = call_tool(export_tool, ["-m", "ResNet18", "-p", weights, "-o", str(tmp_path / "mine")],
                             monkeypatch, capsys)
    assert "not an earlier export" in one_error_line(code, err)
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    with pytest.raises(CheckpointError, match="has 10 classes"):
        load_model_for_export("ResNet18", weights, class_dim=7)


def test_infer_errors_benchmark_and_yml_checks(family_exports, digits_dir, tmp_path, monkeypatch,
                                               capsys):
    import tools.infer as infer_tool
    out, model, batch, _ = family_exports("ResNet18")
    # the reference backend: the recorded source checkpoint in eager mode
    check_close(Predictor(out, "dygraph", use_gpu=False, cpu_threads=1).run(batch),
                dygraph_probs(model, batch))
    code, _, err = call_tool(infer_tool, ["--model_dir", str(tmp_path / "missing"), "--image",
                                          digit_paths(digits_dir)[0]], monkeypatch, capsys)
    assert "--model_dir" in one_error_line(code, err) and "not found" in err
    code, _, err = call_tool(infer_tool, ["--model_dir", out, "--image", str(tmp_path / "no.png")],
                             monkeypatch, capsys)
    assert f"--image {tmp_path / 'no.png'} not found" in one_error_line(code, err)
    (tmp_path / "list.txt").write_text("images/0/0000.png 0\nimages/nope.png 1\n")
    code, _, err = call_tool(infer_tool, ["--model_dir", out, "--image", str(tmp_path / "list.txt"),
                                          "--data_dir", digits_dir], monkeypatch, capsys)
    assert "image(s) not found, first: line 2:" in one_error_line(code, err)
    code, _, err = call_tool(infer_tool, ["--model_dir", out, "--image", digits_dir,
                                          "--use_tensorrt", "--use_gpu", "false"], monkeypatch, capsys)
    assert "--use_tensorrt needs a GPU" in one_error_line(code, err)
    # a folder, top-3, JSON, and a benchmark on the first batch
    js = tmp_path / "r.json"
    code, stdout, err = call_tool(infer_tool, [
        "--model_dir", out, "--image", os.path.join(digits_dir, "images", "7"), "--topk", "3",
        "--batch_size", "8", "--cpu_threads", "1", "--save_json", str(js), "--benchmark",
        "--warmup", "1", "--iters", "2"], monkeypatch, capsys)
    assert code == 0, err
    res = json.loads(js.read_text())
    n = len(os.listdir(os.path.join(digits_dir, "images", "7")))
    assert len(res["results"]) == n and len(res["results"][0]["class_ids"]) == 3
    assert res["benchmark"]["input_shape"] == [8, 3, 32, 32] and res["benchmark"]["images_per_s"] > 0
    assert "class id(s): [" in stdout and "images/s" in stdout
    # inference.yml is checked: a channel order that contradicts DecodeImage is refused
    bad = tmp_path / "bad"
    os.makedirs(bad)
    for f in os.listdir(out):
        if not f.endswith(".onnx"):
            os.symlink(os.path.join(out, f), bad / f)
    os.remove(bad / "inference.yml")
    info = yaml.safe_load(open(os.path.join(out, "inference.yml")))
    info["Global"]["channel_order"] = "BGR"
    (bad / "inference.yml").write_text(yaml.safe_dump(info))
    with pytest.raises(InferenceError, match="channel_order is BGR but DecodeImage.to_rgb gives RGB"):
        Predictor(str(bad))
    info["Global"]["channel_order"] = "RGB"
    info["PreProcess"]["transform_ops"].insert(1, {"RandFlipImage": {}})
    (bad / "inference.yml").write_text(yaml.safe_dump(info))
    with pytest.raises(InferenceError, match="RandFlipImage is random"):
        Predictor(str(bad))
    if onnx_skip_reason() is None:
        info["PreProcess"]["transform_ops"].pop(1)
        (bad / "inference.yml").write_text(yaml.safe_dump(info))
        with pytest.raises(InferenceError, match="inference.onnx not found: export with --onnx"):
            Predictor(str(bad), "onnxruntime")


def test_tools_without_arguments_print_usage(tmp_path):
    for tool, needs in (("export_model.py", "-m ARCH -p WEIGHTS"), ("infer.py", "--model_dir")):
        proc = run_tool([os.path.join(ROOT, "tools", tool)], cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.startswith("usage: ") and needs in proc.stderr
        assert "Examples:" in proc.stderr and "Traceback" not in proc.stderr


def test_legacy_pdmodel_export_runs(family_exports, tmp_path):
    """Paddle's old program format (.pdmodel, FLAGS_enable_pir_api=0) exports and predicts too."""
    _, model, batch, weights = family_exports("DLA46_c")
    exp = run_tool([os.path.join(ROOT, "tools/export_model.py"), "-c", DEMO_CFG,
                    "-o", f"pretrained_model={weights}", "-o", f"save_inference_dir={tmp_path / 'old'}",
                    "-o", "VALID.label_list="], cwd=tmp_path, env={"FLAGS_enable_pir_api": "0"})
    assert exp.returncode == 0, exp.stderr[-3000:]
    assert os.path.isfile(tmp_path / "old" / "inference.pdmodel")
    assert not os.path.exists(tmp_path / "old" / "inference.json")
    check_close(Predictor(str(tmp_path / "old"), cpu_threads=1).run(batch), dygraph_probs(model, batch))

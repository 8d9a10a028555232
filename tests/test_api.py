"""The public API (``import ppcls``): every function called from outside the repository (a
child process whose working folder is a temporary one and which finds the package through
PYTHONPATH), on a slice of the digits; its errors; ``import ppcls`` without paddle."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ppcls
from ppcls.utils.checkpoint import CheckpointError
from ppcls.utils.config import ConfigError
from ppcls.inference import InferenceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_outside(code, cwd, *args, timeout=600):
    """Run ``code`` in a fresh interpreter in ``cwd`` with the checkout on PYTHONPATH only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout)


# Every API function in one child process (one paddle start-up): DLA46_c on 32x32 digits.
OUTSIDE = r'''
import json, os, sys
import numpy as np
import ppcls
assert "paddle" not in sys.modules                           # `import ppcls` is light
out = {"file": ppcls.__file__}
out["dla4"] = ppcls.list_models("dla4*")                     # case-insensitive pattern
out["n_models"] = len(ppcls.list_models())

import paddle
data, tl, vl = sys.argv[1:4]
# load_config: a shipped recipe by name, dict overrides (YAML-typed values)
cfg = ppcls.load_config("quick_start/DLA46_c_digits", {
    "TRAIN.data_dir": data, "TRAIN.file_list": tl, "VALID.data_dir": data, "VALID.file_list": vl,
    "VALID.label_list": os.path.join(data, "label_list.txt"), "TRAIN.num_workers": 0,
    "VALID.num_workers": 0, "TRAIN.batch_size": 32, "VALID.batch_size": 50, "epochs": 2,
    "LEARNING_RATE.params.warmup_epoch": 0, "cpu_threads": 1, "model_save_dir": "out",
    "print_interval": 100})
out["recipe"] = cfg._source
out["epochs"], out["batch"] = cfg.epochs, cfg.TRAIN.batch_size

summary = ppcls.train(cfg)
out["train"] = {k: summary[k] for k in ("best_top1", "best_epoch")}
best = os.path.join("out", "DLA46_c", "best_model", "ppcls")
out["best_exists"] = os.path.isfile(best + ".pdparams")
metrics = ppcls.evaluate(cfg, weights=best)
out["eval"] = {k: metrics[k] for k in ("top1", "num_samples")}
out["cfg_untouched"] = cfg.mode == "train" and cfg.pretrained_model == ""

# build_model: the class count from the weights; the same logits as the trained model
model = ppcls.build_model("DLA46_c", pretrained=best + ".pdparams")
x = np.random.RandomState(0).standard_normal([2, 3, 32, 32]).astype("float32")
with paddle.no_grad():
    logits = model(paddle.to_tensor(x)).numpy()
ref = ppcls.build_model("DLA46_c", class_dim=10)
ref.set_state_dict(paddle.load(best + ".pdparams"))
ref.eval()
with paddle.no_grad():
    out["logits_diff"] = float(np.abs(logits - ref(paddle.to_tensor(x)).numpy()).max())
out["training_mode"] = model.training
# another class count: every tensor but the classifier's comes from the file
three = ppcls.build_model("DLA46_c", pretrained=best, class_dim=3)
file_state = paddle.load(best + ".pdparams")
same = [k for k, v in three.state_dict().items() if np.array_equal(v.numpy(), file_state[k])]
out["class3"] = [list(three.fc.weight.shape), len(three.state_dict()) - len(same),
                 sorted(set(three.state_dict()) - set(same))]

# export: by name + weights, and from the recipe; each read back by the predictor
from ppcls.inference import Predictor
name_dir = ppcls.export("DLA46_c", weights=best, out_dir="exp_name", resize_short=32, crop=32)
recipe_dir = ppcls.export(cfg, weights=best, out_dir="exp_recipe", softmax=False)
p1, p2 = Predictor(name_dir, cpu_threads=1), Predictor(recipe_dir, cpu_threads=1)
probs = paddle.nn.functional.softmax(paddle.to_tensor(logits), axis=-1).numpy()
out["export_name"] = [p1.info["Global"]["class_num"], p1.info["PostProcess"]["label_list"][:2],
                      float(np.abs(p1.run(x) - probs).max())]
out["export_recipe"] = [p2.info["PostProcess"]["label_list"][:2], p2.softmax,
                        float(np.abs(p2.run(x) - logits).max() / np.abs(logits).max())]
print("RESULT " + json.dumps(out))
'''


def test_api_from_outside_the_repository(digits_dir, tmp_path):
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        train = [l for l in f.read().splitlines() if l.strip()]
    with open(os.path.join(digits_dir, "val_list.txt")) as f:
        val = [l for l in f.read().splitlines() if l.strip()]
    (tmp_path / "train.txt").write_text("\n".join(train[::len(train) // 96][:96]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(val[::len(val) // 50][:50]) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = run_outside(OUTSIDE, work, digits_dir, tmp_path / "train.txt", tmp_path / "val.txt")
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(line[0][len("RESULT "):])
    assert r["file"] == os.path.join(ROOT, "ppcls", "__init__.py")
    assert r["dla4"] == ["DLA46_c", "DLA46x_c"]
    assert r["n_models"] == len(ppcls.list_models()) > 50
    assert r["recipe"].endswith(os.path.join("configs", "quick_start", "DLA46_c_digits.yaml")
                                + " (with -o overrides)")
    assert (r["epochs"], r["batch"]) == (2, 32)
    assert r["best_exists"] and 0 <= r["train"]["best_epoch"] <= 1
    # evaluating the saved best model reproduces the validation that selected it
    assert r["eval"]["num_samples"] == 50
    assert r["eval"]["top1"] == pytest.approx(r["train"]["best_top1"], abs=1e-9)
    assert r["cfg_untouched"]
    assert r["logits_diff"] == 0.0 and r["training_mode"] is False
    assert r["class3"] == [[3, 256, 1, 1], 2, ["fc.bias", "fc.weight"]]
    assert r["export_name"][:2] == [10, ["0", "1"]] and r["export_name"][2] < 1e-4
    assert r["export_recipe"][0] == ["digit_0", "digit_1"]      # the names of VALID.label_list
    assert r["export_recipe"][1] is False and r["export_recipe"][2] < 1e-4


def test_import_ppcls_is_light_and_needs_no_paddle(tmp_path):
    """Without paddle: `import ppcls` works, every function raises one clear error, and the
    tools print it as one `error:` line."""
    block = "import sys; sys.modules['paddle'] = None\n"
    proc = run_outside(block + r'''
import ppcls
errors = []
for call in (lambda: ppcls.build_model("DLA34"), lambda: ppcls.list_models(),
             lambda: ppcls.load_config("DLA34"), lambda: ppcls.train("DLA34"),
             lambda: ppcls.evaluate("DLA34"), lambda: ppcls.export("DLA34", "w")):
    try:
        call()
    except ppcls.PaddleNotInstalledError as e:
        assert isinstance(e, ImportError) and isinstance(e, ppcls.UserError)
        errors.append(str(e))
print(len(errors), errors[0])
''', tmp_path)
    assert proc.returncode == 0, proc.stderr
    count, message = proc.stdout.strip().split(" ", 1)
    assert count == "6"
    assert "pip install paddlepaddle==3.3.1 (CPU) or paddlepaddle-gpu==3.3.1" in message
    tool = run_outside(block + "import runpy\nsys.argv = sys.argv[1:]\n"
                       "runpy.run_path(sys.argv[0], run_name='__main__')\n", tmp_path,
                       os.path.join(ROOT, "tools", "train.py"), "-c", "x.yaml")
    assert tool.returncode == 2, tool.stderr
    assert tool.stderr.strip().splitlines() == [f"error: {message}"]
    light = run_outside("import sys, ppcls; print(sorted(m.split('.')[0] for m in sys.modules "
                        "if m.startswith(('paddle', 'numpy', 'cv2', 'yaml'))))", tmp_path)
    assert light.stdout.strip() == "[]", light.stdout + light.stderr


# ----------------------------------------------------------------------------- errors
def test_build_model_errors(tmp_path):
    with pytest.raises(ppcls.ModelError, match=r"unknown architecture 'DLA6'; did you mean DLA60"):
        ppcls.build_model("DLA6")
    with pytest.raises(ppcls.ModelError, match=r"DLA34: .*unexpected keyword argument 'depth'"):
        ppcls.build_model("DLA34", depth=3)
    with pytest.raises(ppcls.ModelError, match="never downloads weights"):
        ppcls.build_model("DLA34", pretrained=True)
    with pytest.raises(ppcls.ModelError, match="class_dim='auto' reads the class count"):
        ppcls.build_model("DLA34", class_dim="auto")
    with pytest.raises(ppcls.ModelError, match="class_dim must be a positive int"):
        ppcls.build_model("DLA34", class_dim=0)
    with pytest.raises(CheckpointError, match=r"weights file not found: .*nope\.pdparams"):
        ppcls.build_model("DLA34", pretrained=str(tmp_path / "nope"))
    import paddle
    small = ppcls.build_model("DLA46_c", class_dim=4)
    paddle.save(small.state_dict(), str(tmp_path / "w.pdparams"))
    with pytest.raises(CheckpointError, match=r"(?s)does not fit .*missing: level3"):
        ppcls.build_model("DLA34", pretrained=str(tmp_path / "w"))
    with pytest.raises(ppcls.ModelError, match=r"DLA46_c: .*unexpected keyword argument 'depth'"):
        ppcls.build_model("DLA46_c", pretrained=str(tmp_path / "w"), depth=3)
    # the safetensors form gives the same model as the pdparams form
    from safetensors.numpy import save_file
    save_file({k: v.numpy() for k, v in small.state_dict().items()}, str(tmp_path / "w.safetensors"))
    a = ppcls.build_model("DLA46_c", pretrained=str(tmp_path / "w.safetensors"))
    b = ppcls.build_model("DLA46_c", pretrained=tmp_path / "w", class_dim="auto")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va.numpy(), vb.numpy())
    assert list(a.fc.weight.shape)[0] == 4


def test_load_config_and_export_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: no_such_recipe"):
        ppcls.load_config("no_such_recipe")
    with pytest.raises(ConfigError, match=r"overrides must be a list .* \(write \['epochs=2'\]\)"):
        ppcls.load_config("DLA34", "epochs=2")
    with pytest.raises(ConfigError, match="epochz: unknown key"):
        ppcls.load_config("DLA34", {"epochz": 2})
    cfg = ppcls.load_config(os.path.join(ROOT, "configs", "DLA", "DLA34.yaml"),
                            {"TRAIN.transforms": None, "OPTIMIZER.params.momentum": 0.5,
                             "LEARNING_RATE.params.decay_epochs": [1, 2]})
    assert cfg.OPTIMIZER.params.momentum == 0.5
    assert cfg.LEARNING_RATE.params.decay_epochs == [1, 2]
    with pytest.raises(ConfigError, match="overrides go with a recipe path"):
        ppcls.train(cfg, ["epochs=1"])
    with pytest.raises(ConfigError, match="expected a recipe path or the result of"):
        ppcls.evaluate({"epochs": 1})
    with pytest.raises(InferenceError, match=r"export\('DLA34'\) needs weights=PATH"):
        ppcls.export("DLA34")
    with pytest.raises(ppcls.ModelError, match="unknown architecture 'DLA6'"):
        ppcls.export("DLA6", weights="w")
    with pytest.raises(InferenceError, match=r"export\(recipe, crop=...\): with a recipe"):
        ppcls.export(cfg, crop=32)
    with pytest.raises(InferenceError, match="export needs weights"):
        ppcls.export(cfg, out_dir=str(tmp_path / "x"))
    import paddle
    paddle.seed(0)
    model = ppcls.build_model("DLA46_c", class_dim=4)
    with pytest.raises(InferenceError, match="a Layer is exported with its current parameters"):
        ppcls.export(model, weights="w")
    with pytest.raises(InferenceError, match="the model has 4 outputs but class_dim is 5"):
        ppcls.export(model, out_dir=str(tmp_path / "y"), class_dim=5, resize_short=32, crop=32)
    assert not (tmp_path / "y").exists()
    # a Layer exports with its current parameters; its class count is its output width
    model.train()
    # logits, not softmax: DLA's official classifier init gives a random model logits in the
    # hundreds, where the softmax of two float32 paths differs by more than any fixed atol
    out = ppcls.export(model, out_dir=tmp_path / "layer", resize_short=32, crop=32,
                       labels=["a", "b", "c", "d"], softmax=False)
    assert out == str(tmp_path / "layer") and model.training      # its mode is restored
    from ppcls.inference import Predictor
    pred = Predictor(out, cpu_threads=1)
    x = np.random.RandomState(0).standard_normal([2, 3, 32, 32]).astype("float32")
    model.eval()
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    assert pred.labels == ["a", "b", "c", "d"] and pred.info["Global"]["weights"] == ""
    got = pred.run(x)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max(), (got, ref)   # the export check's bound

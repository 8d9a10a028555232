"""Quiet logs (issue 17): every command-line tool, run for real on tiny inputs, writes nothing
of Paddle's own on stderr (no UserWarning, no "No ccache found", no glog/PIR lines, no flag
banner) unless PPCLS_VERBOSE=1; our own messages stay. The tools run in parallel, each with a
hard timeout."""
import glob
import os
import re
import subprocess
import sys
import time

import numpy as np

from conftest import write_list

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CFG = os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")
NOISE = re.compile(r"UserWarning|DeprecationWarning|No ccache|Modified FLAGS|FLAGS\(name=|PIR|"
                   r"site-packages/paddle|^[IWEF]\d{4} \d\d:\d\d:\d\d", re.M)

# gen_model_zoo measures all 64 models (minutes): run its module as the tool does (its header
# quiets Paddle), then main() on one model
ZOO_HARNESS = '''
import runpy, sys
ns = runpy.run_path({tool!r}, run_name="gen_model_zoo_under_test")
from ppcls.analysis import model_zoo
model_zoo.registered_in_order = lambda pattern="*": ["ResNet18"]
sys.exit(ns["main"](["-q"]))
'''


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT)
    for key in ("GLOG_minloglevel", "PPCLS_VERBOSE", "PYTHONWARNINGS"):
        env.pop(key, None)             # the tools must quiet Paddle by themselves
    env.update(extra)
    return env


def _official_resnet18(path):
    """A torchvision-named ResNet18 checkpoint (.npz) for convert_weights."""
    from ppcls.modeling import build_model
    state = {}
    for k, v in build_model("ResNet18", class_dim=10).state_dict().items():
        v = v.numpy()
        state[k.replace("._mean", ".running_mean").replace("._variance", ".running_var")] = \
            v.T if k == "fc.weight" else v
    np.savez(path, **state)


def test_every_tool_keeps_paddles_noise_off_stderr(digits_dir, tmp_path):
    import paddle
    from ppcls.inference.export import export
    from ppcls.inference.preprocess import default_ops
    from ppcls.modeling import build_model
    with open(os.path.join(digits_dir, "val_list.txt")) as f:
        lines = [l.strip() for l in f if l.strip()]
    lst = write_list(tmp_path / "list.txt", lines[::45][:8])
    model = build_model("ResNet18", class_dim=10)
    paddle.save(model.state_dict(), str(tmp_path / "w.pdparams"))
    _official_resnet18(tmp_path / "official.npz")
    model.eval()
    export(model, str(tmp_path / "inference"), default_ops(resize_short=32, crop=32),
           [f"digit_{i}" for i in range(10)], "ResNet18", log=lambda *a, **k: None)
    (tmp_path / "metrics.csv").write_text("epoch,lr,train_loss,valid_top1\n0,0.1,2.0,0.3\n")
    data = [f"TRAIN.data_dir={digits_dir}", f"TRAIN.file_list={lst}", f"VALID.data_dir={digits_dir}",
            f"VALID.file_list={lst}", f"VALID.label_list={os.path.join(digits_dir, 'label_list.txt')}",
            "TRAIN.num_workers=0", "VALID.num_workers=0", "ARCHITECTURE.name=ResNet18",
            "TRAIN.batch_size=8", "VALID.batch_size=8", "epochs=1", "cpu_threads=1",
            "LEARNING_RATE.params.warmup_epoch=0", f"model_save_dir={tmp_path / 'out'}"]
    o = [a for d in data for a in ("-o", d)]
    image = os.path.join(digits_dir, lines[0].split()[0])
    tools = {
        "train.py": ["-c", DEMO_CFG, *o],                 # validation: the oneDNN predictor too
        "eval.py": ["-c", DEMO_CFG, *o, "-o", f"pretrained_model={tmp_path / 'w'}"],
        "export_model.py": ["-c", DEMO_CFG, *o, "-o", f"pretrained_model={tmp_path / 'w'}",
                            "-o", f"save_inference_dir={tmp_path / 'exported'}"],
        "infer.py": ["--model_dir", str(tmp_path / "inference"), "--image", image],
        "paras_flops.py": ["-a", "ResNet18", "--input_size", "32"],
        "check_dataset.py": [lst, digits_dir, "--classes_num", "10"],
        "make_lists.py": [os.path.join(digits_dir, "images"), "--out", str(tmp_path / "lists")],
        "eval_visual.py": ["--log-dir", str(tmp_path / "metrics.csv"), "--out", str(tmp_path)],
        "convert_weights.py": ["-a", "ResNet18", "--src", str(tmp_path / "official.npz"),
                               "--dst", str(tmp_path / "converted.pdparams")],
        "benchmark.py": ["-a", "ResNet18", "--input_size", "32", "--batch_size", "2", "--warmup",
                         "0", "--iters", "1", "--peak", "none", "--mode", "eval", "--backend",
                         "dygraph", "--threads", "1"],
        "gen_model_zoo.py": None,
        "prepare_demo_data.py": ["--out", str(tmp_path / "demo")],
        "compare.py": ["-c", DEMO_CFG, "--report", "--out", str(tmp_path / "compare")],
    }
    listed = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "tools", "*.py"))}
    assert set(tools) == listed - {"__init__.py"}, "a new tool: add it here"
    runs = {}
    for name, args in tools.items():
        if args is None:
            cmd = [sys.executable, "-c", ZOO_HARNESS.format(tool=os.path.join(ROOT, "tools", name))]
        else:
            cmd = [sys.executable, os.path.join(ROOT, "tools", name), *args]
        runs[name] = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    verbose = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "paras_flops.py"), "-a",
                                "ResNet18", "--input_size", "32"], cwd=tmp_path,
                               env=_env(PPCLS_VERBOSE="1"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline, results = time.time() + 600, {}
    try:
        for name, proc in list(runs.items()) + [("verbose", verbose)]:
            out, err = proc.communicate(timeout=max(1, deadline - time.time()))
            results[name] = (proc.returncode, out, err)
    finally:
        for proc in list(runs.values()) + [verbose]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    for name, (code, out, err) in results.items():
        if name == "verbose":
            continue
        assert code == 0, (name, out[-2000:], err[-2000:])
        assert not NOISE.search(err), (name, err[-3000:])
        ours = [l for l in err.splitlines() if l.strip()]
        if name == "check_dataset.py":           # its findings, on stderr by design
            assert all(l.startswith(("note: ", "warning: ")) for l in ours), err
        else:
            assert ours == [], (name, err)
    assert "saved checkpoint" in results["train.py"][1] and "END epoch:0" in results["eval.py"][1]
    # the switch: with PPCLS_VERBOSE=1 Paddle's own warning is back
    code, _, err = results["verbose"]
    assert code == 0 and "No ccache found" in err

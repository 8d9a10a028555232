"""tools/convert_weights.py end to end: official-named weights in, Paddle weights out, loaded by
the engine's pretrained_model path, giving the official logits."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from parity import assert_logits_close, fixture_input, load_fixture, official_state_dict
from ppcls.modeling import build_model
from ppcls.utils.checkpoint import load_pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools/convert_weights.py"), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("src_ext, dst_ext", [(".npz", ".pdparams"), (".safetensors", ".safetensors")])
def test_convert_then_load_gives_official_logits(tmp_path, src_ext, dst_ext):
    fixture = load_fixture("dla46_c")
    official = {f"module.{k}": v for k, v in official_state_dict(fixture).items()}  # DataParallel
    src = str(tmp_path / f"dla46_c{src_ext}")
    if src_ext == ".npz":
        np.savez(src, **official)
    else:
        from safetensors.numpy import save_file
        save_file(official, src)
    dst = str(tmp_path / f"out{dst_ext}")
    proc = convert(["-a", "DLA46_c", "--src", src, "--dst", dst])
    assert proc.returncode == 0, proc.stderr
    assert "converted" in proc.stdout and "5 dead DLA projection" in proc.stdout
    model = build_model("DLA46_c", class_dim=1000)
    load_pretrained(model, dst if dst_ext == ".safetensors" else dst[: -len(".pdparams")])
    model.eval()
    with paddle.no_grad():
        out = model(paddle.to_tensor(fixture_input(fixture))).numpy()
    assert_logits_close(out, np.asarray(fixture["output"], np.float32))


def test_convert_errors_are_one_clear_line(tmp_path):
    missing = convert(["-a", "DLA60", "--src", str(tmp_path / "nope.pth"), "--dst", str(tmp_path / "o.pdparams")])
    assert missing.returncode != 0 and "weights file not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    wrong = tmp_path / "w.npz"
    np.savez(wrong, **official_state_dict(load_fixture("dla46_c")))
    other = convert(["-a", "DLA34", "--src", str(wrong), "--dst", str(tmp_path / "o.pdparams")])
    assert other.returncode == 2 and "does not fit" in other.stderr and "Traceback" not in other.stderr
    assert not (tmp_path / "o.pdparams").exists()
    unknown = convert(["-a", "DLA61", "--src", str(wrong), "--dst", str(tmp_path / "o.pdparams")])
    assert unknown.returncode != 0 and "did you mean" in unknown.stderr


def test_pth_files_are_read_with_weights_only(tmp_path, monkeypatch):
    """The .pth path: torch (stubbed here, as CI has no PyTorch) is asked for weights_only=True,
    and a training checkpoint's state_dict wrapper and module. prefix are removed."""
    import sys
    import types

    from ppcls.convert import convert_state_dict, load_source
    calls = []
    official = official_state_dict(load_fixture("dla46_c"))

    def fake_load(path, map_location=None, weights_only=False):
        calls.append((path, map_location, weights_only))
        return {"epoch": 120, "state_dict": {f"module.{k}": v for k, v in official.items()}}

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=fake_load))
    src = tmp_path / "dla46_c-2bfd52c3.pth"
    src.write_bytes(b"not read by the stub")
    loaded = load_source(str(src))
    assert calls == [(str(src), "cpu", True)]
    weights, report = convert_state_dict("DLA46_c", loaded, source=str(src))
    assert report["class_dim"] == 1000 and report["dropped"]
    assert "fc.weight" in weights


def test_weights_of_another_family_are_one_line_naming_the_fix(tmp_path):
    src = tmp_path / "dla.npz"
    np.savez(src, **official_state_dict(load_fixture("dla46_c")))
    r = convert(["-a", "ResNet18", "--src", str(src), "--dst", str(tmp_path / "o.pdparams")])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and "does not fit ResNet" in lines[0]
    assert "another architecture? Check -a" in lines[0] and "base_layer" in lines[0]
    assert not (tmp_path / "o.pdparams").exists()

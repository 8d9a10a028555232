import errno
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppcls.engine.errors import TrainingError
from ppcls.engine.evaluate import run_eval
from ppcls.engine.run_state import save as _save
from ppcls.engine.train import train
from ppcls.utils import checkpoint as ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CFG = os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")


def weights(prefix):
    return ckpt.load_params_file(prefix)


def test_training_rises_above_chance_and_writes_checkpoints(tiny_cfg):
    cfg = tiny_cfg(n_train=256, n_val=60, extra=["epochs=4"])
    result = train(cfg)
    assert result["best_top1"] > 0.5             # chance is 0.10 on ten digits
    arch_dir = os.path.join(cfg.model_save_dir, "ResNet18")
    assert sorted(os.listdir(arch_dir)) == ["0", "1", "2", "3", "best_model", "metrics.csv"]
    for d in ("0", "1", "2", "3", "best_model"):
        assert ckpt.is_complete(os.path.join(arch_dir, d))
    assert ckpt.latest_checkpoint(arch_dir).endswith(os.path.join("3", "ppcls"))
    metrics = run_eval(tiny_cfg(n_train=256, n_val=60, extra=[
        f"pretrained_model={os.path.join(arch_dir, 'best_model', 'ppcls')}"]))
    assert metrics["top1"] == pytest.approx(result["best_top1"])


def test_resume_equals_an_uninterrupted_run(tiny_cfg, tmp_path):
    full = tiny_cfg(extra=["epochs=2", "validate=False"])
    train(full)
    first = os.path.join(full.model_save_dir, "ResNet18", "0", "ppcls")
    resumed = tiny_cfg(extra=["epochs=2", "validate=False", f"checkpoints={first}",
                              f"model_save_dir={tmp_path / 'resumed'}"])
    train(resumed)
    a = weights(os.path.join(full.model_save_dir, "ResNet18", "1", "ppcls"))
    b = weights(os.path.join(tmp_path, "resumed", "ResNet18", "1", "ppcls"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # and it really continued: epoch 0 was not trained again
    assert not os.path.exists(os.path.join(tmp_path, "resumed", "ResNet18", "0"))
    state = ckpt.load_checkpoint(os.path.join(tmp_path, "resumed", "ResNet18", "1", "ppcls"))[2]
    assert state["epoch"] == 1 and state["global_step"] == 8


def test_a_failed_save_keeps_the_previous_checkpoint(tiny_cfg, monkeypatch, tmp_path):
    from ppcls.modeling import build_model
    from ppcls.optimizer import build_lr_scheduler, build_optimizer
    cfg = tiny_cfg()
    model = build_model("ResNet18", class_dim=10)
    sched = build_lr_scheduler(cfg.LEARNING_RATE, 4, 2)
    opt = build_optimizer(cfg.OPTIMIZER, sched, model.parameters())
    target = str(tmp_path / "ck" / "0")
    _save(model, opt, sched, 0, {"top1": 0.5, "epoch": 0}, target, cfg)
    before = weights(os.path.join(target, "ppcls"))
    real_save = paddle.save

    def full_disk(obj, path, *a, **k):
        if path.endswith(".pdopt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(paddle, "save", full_disk)
    for p in model.parameters():
        p.set_value(p + 1.0)
    with pytest.raises(TrainingError, match="(?s)No space left on device.*previous checkpoints are intact"):
        _save(model, opt, sched, 0, {"top1": 0.6, "epoch": 0}, target, cfg)
    after = weights(os.path.join(target, "ppcls"))
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    assert sorted(os.listdir(tmp_path / "ck")) == ["0"]           # no half-written leftovers


def test_pretrained_errors_are_one_clear_message(tiny_cfg, tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="weights file not found: .*nothing.pdparams"):
        run_eval(tiny_cfg(extra=[f"pretrained_model={tmp_path / 'nothing'}"]))
    other = tmp_path / "other"
    paddle.save(paddle.vision.models.resnet18(num_classes=3).state_dict(), str(other) + ".pdparams")
    with pytest.raises(ckpt.CheckpointError, match=r"(?s)does not fit ResNet.*shape mismatch: fc.weight file \[512, 3\] vs model \[512, 10\]"):
        run_eval(tiny_cfg(extra=[f"pretrained_model={other}"]))
    (tmp_path / "trunc.pdparams").write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(ckpt.CheckpointError, match="truncated or not a Paddle weights file"):
        run_eval(tiny_cfg(extra=[f"pretrained_model={tmp_path / 'trunc'}"]))


def run_tool(args, cwd, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, **kw)


def end_metrics(text):
    m = re.findall(r"END epoch:\d+\s+valid top1: ([\d.]+), top5: ([\d.]+), loss: ([\d.]+)", text)
    assert m, text[-2000:]
    return tuple(float(x) for x in m[-1])


def test_two_cpu_processes_log_per_worker_and_evaluate_exactly(digits_dir, tmp_path):
    with open(os.path.join(digits_dir, "val_list.txt")) as f:
        val = [l for l in f.read().splitlines() if l][::7][:51]          # odd size
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        train_lines = [l for l in f.read().splitlines() if l][::12]
    (tmp_path / "val.txt").write_text("\n".join(val) + "\n")
    (tmp_path / "train.txt").write_text("\n".join(train_lines) + "\n")
    common = ["-o", f"TRAIN.data_dir={digits_dir}", "-o", f"TRAIN.file_list={tmp_path / 'train.txt'}",
              "-o", f"VALID.data_dir={digits_dir}", "-o", f"VALID.file_list={tmp_path / 'val.txt'}",
              "-o", "ARCHITECTURE.name=ResNet18", "-o", "TRAIN.num_workers=0",
              "-o", "VALID.num_workers=0", "-o", "VALID.batch_size=8", "-o", "print_interval=1",
              "-o", f"model_save_dir={tmp_path / 'out'}", "-o", "seed=0",
              "-o", "LEARNING_RATE.params.lr=0.02", "-o", "LEARNING_RATE.params.warmup_epoch=0"]
    proc = run_tool(["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                     str(tmp_path / "log"), os.path.join(ROOT, "tools/train.py"), "-c", DEMO_CFG,
                     "-o", "epochs=1", "-o", "TRAIN.batch_size=32", *common], cwd=tmp_path)
    logs = [(tmp_path / "log" / f"workerlog.{r}").read_text() for r in range(2)]
    assert proc.returncode == 0, logs[0][-3000:] + logs[1][-3000:]
    for log in logs:
        assert re.search(r"epoch:0  , train step:0   , loss: [\d.]+, lr: 0.020000, batch_cost: "
                         r"[\d.]+ s, reader_cost: [\d.]+ s, ips: [\d.]+ images/sec\.", log)
        assert "per-device batch 16 (global 32)" in log
    two = end_metrics(logs[0])
    assert end_metrics(logs[1]) == two                 # every rank reports the gathered result
    one = run_tool([os.path.join(ROOT, "tools/eval.py"), "-c", DEMO_CFG, *common, "-o",
                    f"pretrained_model={tmp_path / 'out' / 'ResNet18' / '0' / 'ppcls'}"], cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    assert end_metrics(one.stdout)[:2] == two[:2]
    assert end_metrics(one.stdout)[2] == pytest.approx(two[2], rel=1e-5)


def test_cli_help_and_clean_errors(tmp_path):
    h = run_tool([os.path.join(ROOT, "tools/train.py"), "-h"], cwd=tmp_path)
    assert h.returncode == 0 and "-o KEY=VALUE" in h.stdout and "resume" in h.stdout
    bad = run_tool([os.path.join(ROOT, "tools/train.py"), "-c", DEMO_CFG, "-o", "epochz=3"], cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "epochz: unknown key; did you mean 'epochs'?" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "output").exists()          # nothing written


def test_single_process_multi_thread_cpu_run_names_the_faster_launch(tiny_cfg, capsys, tmp_path):
    train(tiny_cfg(n_train=64, n_val=20, extra=["epochs=1", "validate=False", "cpu_threads=2"]))
    out = capsys.readouterr().out
    assert "1 worker(s) on Place(cpu) (2 CPU threads each)" in out
    assert ("hint: on CPU, 2 processes of 1 thread train faster than 1 of 2: python -m "
            "paddle.distributed.launch --nproc_per_node 2 tools/train.py") in out
    train(tiny_cfg(n_train=64, n_val=20, extra=["epochs=1", "validate=False", "cpu_threads=1",
                                                 f"model_save_dir={tmp_path / 'one_thread'}"]))
    out = capsys.readouterr().out
    assert "(1 CPU threads each)" in out and "hint:" not in out

"""Long runs (issue 17): keep_checkpoints, the disk the kept checkpoints need, ETAs, metrics.csv
across a kill and a resume, the batch-size-scaled learning rate, eval_visual from metrics.csv."""
import csv
import os
import re
import subprocess
import sys

import pytest

import ppcls.engine.train as train_mod
from ppcls.engine import lr_scale, retention
from ppcls.engine.progress import RunClock, format_eta
from ppcls.engine.recipe import load_config
from ppcls.engine.train import train
from ppcls.utils import checkpoint as ckpt
from ppcls.utils.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CFG = os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")
ETA = r", eta: (\d+ days?, )?\d+:\d\d:\d\d$"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def end_values(out, kind, key):
    """{epoch: value} of ``key`` in the 'END epoch:N <kind> ...' lines."""
    return {int(e): float(v) for e, v in
            re.findall(rf"END epoch:(\d+)\s+{kind} .*?\b{key}: ([\d.]+)", out)}


def test_five_epochs_keeping_two_leave_epochs_3_4_and_best_model_with_etas_and_metrics(
        tiny_cfg, capsys):
    cfg = tiny_cfg(n_train=32, n_val=20, extra=["epochs=5", "keep_checkpoints=2",
                                                 "use_static_eval=False"])
    train(cfg)
    out = capsys.readouterr().out
    arch_dir = os.path.join(cfg.model_save_dir, "ResNet18")
    assert sorted(os.listdir(arch_dir)) == ["3", "4", "best_model", "metrics.csv"]
    assert all(ckpt.is_complete(os.path.join(arch_dir, d)) for d in ("3", "4", "best_model"))
    for gone, after in ((0, 2), (1, 3), (2, 4)):   # removed only once a newer one was saved
        removal = out.index(f"removed {os.path.join(arch_dir, str(gone))} (keep_checkpoints: 2)")
        assert out.index(f"saved checkpoint {os.path.join(arch_dir, str(after), 'ppcls')}") < removal
    # the start-up line: one checkpoint's size (estimated: no checkpoint yet), 2 of 5 kept
    m = re.search(r"checkpoints: ~([\d.]+) MB \(weights [\d.]+ MB \+ optimizer [\d.]+ MB\) each, "
                  r"keeping the newest 2 of 5 \(keep_checkpoints: 2\) \+ best_model ([\d.]+) MB = "
                  r"([\d.]+) MB in .*; [\d.]+ [GMk]?B free there", out)
    assert m, out[:3000]
    actual = retention.directory_bytes(os.path.join(arch_dir, "4")) / 1e6
    assert float(m.group(1)) == pytest.approx(actual, rel=0.01)
    assert float(m.group(2)) == pytest.approx(
        retention.directory_bytes(os.path.join(arch_dir, "best_model")) / 1e6, rel=0.01)
    assert float(m.group(3)) == pytest.approx(2 * float(m.group(1)) + float(m.group(2)), abs=0.2)
    # every progress line and every END line ends with an ETA
    lines = [l for l in out.splitlines() if "train step:" in l or "END epoch:" in l]
    assert len(lines) == 5 * 3
    for line in lines:
        assert re.search(ETA, line), line
    # metrics.csv: one row per epoch, the values of the log
    rows = read_csv(os.path.join(arch_dir, "metrics.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_top1", "valid_loss", "valid_top1",
                             "valid_top5", "epoch_seconds", "images_per_sec"]
    train_loss, valid_top1 = end_values(out, "train", "loss"), end_values(out, "valid", "top1")
    first_lr = {int(e): float(v) for e, v in re.findall(r"epoch:(\d+)\s*, train step:0 .*? lr: ([\d.]+)", out)}
    for r in rows:
        e = int(r["epoch"])
        assert float(r["train_loss"]) == pytest.approx(train_loss[e], abs=1e-5)
        assert float(r["valid_top1"]) == pytest.approx(valid_top1[e], abs=1e-5)
        assert float(r["lr"]) == pytest.approx(first_lr[e], abs=1e-6)
        assert float(r["epoch_seconds"]) > 0 and float(r["images_per_sec"]) > 0


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs."""


def test_metrics_csv_has_one_row_per_epoch_after_a_kill_and_a_resume(tiny_cfg, monkeypatch,
                                                                        capsys):
    extra = ["epochs=4", "use_static_eval=False"]
    cfg = tiny_cfg(n_train=32, n_val=20, extra=extra)
    arch_dir = os.path.join(cfg.model_save_dir, "ResNet18")
    real_save = train_mod.run_state.save

    def dies_saving_epoch_2(model, optimizer, lr_sched, epoch, best, directory, *a, **k):
        if os.path.basename(directory) == "2":
            raise Killed()
        return real_save(model, optimizer, lr_sched, epoch, best, directory, *a, **k)

    monkeypatch.setattr(train_mod.run_state, "save", dies_saving_epoch_2)
    with pytest.raises(Killed):
        train(cfg)
    monkeypatch.setattr(train_mod.run_state, "save", real_save)
    path = os.path.join(arch_dir, "metrics.csv")
    rows = read_csv(path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]        # row 2 written, checkpoint 2 not
    assert ckpt.latest_checkpoint(arch_dir).endswith(os.path.join("1", "ppcls"))
    # the killed run's row 2 describes weights no checkpoint holds: it must be replaced
    rows[2]["train_loss"] = "999"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    capsys.readouterr()
    train(tiny_cfg(n_train=32, n_val=20, extra=extra + ["resume=auto"]))
    out = capsys.readouterr().out
    assert "continuing at epoch 2" in out
    rows = read_csv(path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    resumed = end_values(out, "train", "loss")
    assert set(resumed) == {2, 3}
    for r in rows[2:]:
        assert float(r["train_loss"]) == pytest.approx(resumed[int(r["epoch"])], abs=1e-5)


def _fake_checkpoint(path, epoch):
    os.makedirs(path)
    for name in ("ppcls.pdparams", "ppcls.pdopt"):
        with open(os.path.join(path, name), "wb") as f:
            f.write(b"x" * 10)
    with open(os.path.join(path, "ppcls.state.json"), "w") as f:
        f.write(f'{{"epoch": {epoch}}}')


def test_rotation_keeps_the_newest_never_later_epochs_or_best_model_and_a_kill_mid_delete_is_finished(
        tmp_path, monkeypatch):
    arch = str(tmp_path)
    for e in (0, 1, 2, 3, 4, 5, 9):       # 9: a later epoch of another run, not ours to judge
        _fake_checkpoint(os.path.join(arch, str(e)), e)
    _fake_checkpoint(os.path.join(arch, "best_model"), 1)
    removed = retention.rotate(arch, 3, saved_epoch=4)
    assert sorted(os.path.basename(p) for p in removed) == ["0", "1"]
    assert sorted(os.listdir(arch)) == ["2", "3", "4", "5", "9", "best_model"]
    assert retention.rotate(arch, 0, saved_epoch=5) == []       # 0 keeps all
    assert retention.rotate(arch, 1, saved_epoch=5) and sorted(os.listdir(arch)) == [
        "5", "9", "best_model"]
    # a kill during a removal leaves <epoch>.del-<pid>, never a partial <epoch>/
    monkeypatch.setattr(ckpt.shutil, "rmtree", lambda *a, **k: None)
    ckpt.remove_checkpoint(os.path.join(arch, "5"))
    monkeypatch.undo()
    assert ckpt.latest_checkpoint(arch).endswith(os.path.join("9", "ppcls"))
    leftovers = [n for n in os.listdir(arch) if ".del-" in n]
    assert len(leftovers) == 1
    os.rename(os.path.join(arch, leftovers[0]), os.path.join(arch, "5.del-999999999"))  # a dead pid
    assert ckpt.recover_partial(arch) == [f"finished removing {os.path.join(arch, '5.del-999999999')}"]
    assert sorted(os.listdir(arch)) == ["9", "best_model"]


class Lines:
    """A logger that keeps what it is told."""

    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


def test_the_start_up_plan_warns_with_the_numbers_when_the_disk_cannot_hold_the_kept_checkpoints(
        tmp_path, monkeypatch):
    from ppcls.modeling import build_model
    from ppcls.optimizer import build_optimizer
    model = build_model("ResNet18", class_dim=10)
    opt = build_optimizer({"function": "Momentum", "params": {"momentum": 0.9}, "regularizer": {}},
                          0.1, model.parameters())
    weights = sum(int(v.size) * 4 for v in model.state_dict().values())
    velocity = sum(int(p.size) * 4 for p in model.parameters() if not p.stop_gradient)
    one, parts = retention.estimate_checkpoint_bytes(model, opt)
    assert parts == {"weights": weights, "optimizer": velocity} and one == weights + velocity
    cfg = {"epochs": 120, "save_interval": 1, "keep_checkpoints": 10,
           "model_save_dir": str(tmp_path / "out")}
    log = Lines()
    monkeypatch.setattr(retention, "_free_bytes", lambda path: 500_000_000)
    plan = retention.plan(str(tmp_path / "out" / "ResNet18"), cfg, model, opt, None, None, log)
    assert plan["kept"] == 10 and plan["total"] == 10 * one + weights
    assert "keeping the newest 10 of 120 (keep_checkpoints: 10)" in log.infos[0]
    assert len(log.warnings) == 1
    w = log.warnings[0]
    size = retention._size
    assert f"need {size(10 * one + weights)} (10 x {size(one)} + best_model {size(weights)})" \
           in w and "only 500.0 MB is free" in w, w
    log.warnings.clear()
    monkeypatch.setattr(retention, "_free_bytes", lambda path: 10 ** 12)
    retention.plan(str(tmp_path / "out" / "ResNet18"), dict(cfg, keep_checkpoints=0), model, opt,
                   None, None, log)
    assert "keeping all 120 (keep_checkpoints: 0)" in log.infos[-1] and not log.warnings


def test_eta_from_moving_averages_of_steps_validations_and_the_rest():
    now = [0.0]
    clock = RunClock(steps_per_epoch=10, epochs=4, validates=lambda e: e % 2 == 1, window=3,
                     clock=lambda: now[0])
    clock.begin_epoch()
    assert clock.epoch_left(0, 0) == 0             # nothing measured yet
    for t in (5.0, 1.0, 1.0, 1.0):                 # the slow first step leaves the window of 3
        clock.step(t)
        now[0] += t
    assert clock.epoch_left(0, 3) == pytest.approx(6 * 1.0)
    now[0] = 10.0
    clock.train_done()
    # run: epochs 1-3 of 10 steps at 1 s, validations unknown yet, nothing else measured
    assert clock.run_left(0, validated=False) == pytest.approx(30.0)
    now[0] = 12.0                                   # 2 s of saving etc.
    assert clock.end_epoch() == pytest.approx(12.0)
    clock.begin_epoch()
    for _ in range(10):
        clock.step(1.0)
        now[0] += 1.0
    clock.train_done()
    clock.valid_done(4.0)
    now[0] += 4.0
    # epoch 1 validated: left are epochs 2, 3 (20 steps), 1 validation (epoch 3), 3 x 2 s other
    assert clock.run_left(1, validated=True) == pytest.approx(20 + 4 + 3 * 2.0)
    assert clock.epoch_left(3, 4) == pytest.approx(5 + 4 + 2)
    assert format_eta(93784.4) == "1 day, 2:03:04" and format_eta(59.6) == "0:01:00"
    assert clock.run_suffix(1, True) == ", eta: 0:00:30"


def demo_overrides(digits_dir, tmp_path, n_train=16):
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        lines = [l.strip() for l in f if l.strip()][::90][:n_train]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    return [f"TRAIN.data_dir={digits_dir}", f"TRAIN.file_list={tmp_path / 'train.txt'}",
            "TRAIN.num_workers=0", "validate=False", "ARCHITECTURE.name=ResNet18", "epochs=1",
            "cpu_threads=1", "print_interval=1", "LEARNING_RATE.params.warmup_epoch=0",
            f"model_save_dir={tmp_path / 'out'}"]


def test_a_batch_size_override_logs_the_linearly_scaled_lr_and_auto_scale_lr_applies_it(
        digits_dir, tmp_path, capsys):
    base = demo_overrides(digits_dir, tmp_path)
    # the recipe file: batch 64, lr 0.04 (read here, not assumed)
    file_batch, file_lr = lr_scale.file_values(DEMO_CFG)
    assert (file_batch, file_lr) == (64, 0.04)

    log = Lines()
    cfg = load_config(DEMO_CFG, base + ["TRAIN.batch_size=8"])
    assert lr_scale.lr_section(cfg, log)["params"]["lr"] == 0.04        # logged, not applied
    (msg,) = log.warnings
    assert not log.infos and msg.startswith(
        f"TRAIN.batch_size 8 differs from 64 in {DEMO_CFG}: the linearly scaled lr is 0.005 "
        f"(x 8/64 of the file's 0.04); training with lr 0.04 as written")
    log.warnings.clear()
    lr_scale.lr_section(load_config(DEMO_CFG, base + ["TRAIN.batch_size=64"]), log)
    assert log.infos == log.warnings == []                               # the recipe's batch
    with pytest.raises(ConfigError, match=r"auto_scale_lr: True scales the recipe file's lr .* "
                                          r"-o also sets LEARNING_RATE.params.lr"):
        load_config(DEMO_CFG, base + ["TRAIN.batch_size=8", "auto_scale_lr=True",
                                      "LEARNING_RATE.params.lr=0.1"])
    # applied: the first step trains at 0.04 x 16/64
    train(load_config(DEMO_CFG, base + ["TRAIN.batch_size=16", "auto_scale_lr=True"]))
    out = capsys.readouterr().out
    assert "auto_scale_lr: TRAIN.batch_size 16 instead of the recipe file's 64: lr 0.04 -> 0.01 " \
           "(x 16/64)" in out
    assert re.search(r"epoch:0  , train step:0   , loss: [\d.]+, lr: 0\.010000,", out)


def test_eval_visual_plots_from_metrics_csv(tmp_path):
    from ppcls.analysis import log_parse
    from ppcls.engine.records import MetricsCsv, metrics_columns
    arch = tmp_path / "output" / "DLA60"
    m = MetricsCsv(str(arch), metrics_columns(5), 0)
    for e in range(3):
        m.add(e, {"lr": 0.1 / (e + 1), "train_loss": 3.0 - e, "train_top1": 0.2 * e,
                  "valid_loss": 2.5 - e, "valid_top1": 0.3 + 0.1 * e, "valid_top5": 0.6 + 0.1 * e,
                  "epoch_seconds": 10.0, "images_per_sec": 100.0})
    for where in (arch / "metrics.csv", arch, tmp_path / "output"):
        run, = log_parse.load_runs([str(where)])
        assert run.label == "DLA60"
        assert run.train_loss() == ([0, 1, 2], [3.0, 2.0, 1.0])
        assert run.learning_rate() == ([0, 1, 2], [0.1, 0.05, pytest.approx(0.0333333)])
        assert run.valid("top1") == ([0, 1, 2], [0.3, 0.4, 0.5])
        assert run.topk_key() == "top5" and run.valid("loss")[1] == [2.5, 1.5, 0.5]
    # a resumed run's rows: epochs >= the start epoch are dropped, then rewritten once
    MetricsCsv(str(arch), metrics_columns(5), 2)
    assert [r["epoch"] for r in read_csv(arch / "metrics.csv")] == ["0", "1"]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_visual.py"), "--log-dir",
                        str(arch / "metrics.csv"), "--out", str(tmp_path / "plots")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "DLA60: 2 epoch(s), best top-1 40.00% at epoch 1" in r.stdout
    for name in ("acc_plot.png", "loss_plot.png"):
        assert os.path.getsize(tmp_path / "plots" / name) > 1000

"""Fault injection: the suite survives killed processes, NaN losses, full or unwritable disks,
bad images, bad recipes and weights, dying distributed workers and untrusted files, without
losing work. Each test injects one fault and checks what the user is told and what is kept."""
import errno
import glob
import io
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import paddle
import pytest

import ppcls.engine.run_state as run_state_mod
from conftest import write_code_running_pdparams, write_list
from ppcls.engine.errors import TrainingError
from ppcls.engine.train import train
from ppcls.utils import checkpoint as ckpt
from ppcls.engine.recipe import load_config
from ppcls.utils.config import SCHEMA, ConfigError, Section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CFG = os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")
TRAIN_PY = os.path.join(ROOT, "tools/train.py")

# Runs tools/train.py with one fault injected (tests only; production code has no hooks):
#   FAULT=slow_save:S   sleep S seconds after each file written into a checkpoint's temporary
#                       directory, so that the test can kill the process in the middle of a save
#   FAULT=raise_rank1:N raise a TrainingError on rank 1 at its N-th loss computation
HARNESS = '''
import os, runpy, sys, time
sys.path.insert(0, {root!r})
kind, arg = os.environ["FAULT"].split(":")
if kind == "slow_save":
    import paddle
    _save = paddle.save
    def slow_save(obj, path, *a, **k):
        _save(obj, path, *a, **k)
        if ".tmp-" in path:
            time.sleep(float(arg))
    paddle.save = slow_save
elif kind == "raise_rank1":
    import ppcls.engine.train as T
    import ppcls.modeling.loss as L
    _ce, calls = L.cross_entropy, [0]
    def faulty(*a, **k):
        if os.environ.get("PADDLE_TRAINER_ID") == "1":
            calls[0] += 1
            if calls[0] == int(arg):
                raise T.TrainingError("injected fault on rank 1")
        return _ce(*a, **k)
    L.cross_entropy = faulty
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


# ---------------------------------------------------------------------------- helpers
def slice_lists(digits_dir, tmp_path, n_train, n_val=40):
    """The conftest slice of the demo digits, as two list files."""
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        tr = [l.strip() for l in f if l.strip()]
    with open(os.path.join(digits_dir, "val_list.txt")) as f:
        va = [l.strip() for l in f if l.strip()]
    tr = tr[:: max(1, len(tr) // n_train)][:n_train]
    va = va[:: max(1, len(va) // n_val)][:n_val]
    return write_list(tmp_path / "train.txt", tr), write_list(tmp_path / "val.txt", va)


def tiny_overrides(digits_dir, tmp_path, n_train=96, extra=()):
    tl, vl = slice_lists(digits_dir, tmp_path, n_train)
    return [f"TRAIN.data_dir={digits_dir}", f"TRAIN.file_list={tl}", f"VALID.data_dir={digits_dir}",
            f"VALID.file_list={vl}", f"VALID.label_list={os.path.join(digits_dir, 'label_list.txt')}",
            "TRAIN.num_workers=0", "VALID.num_workers=0", "ARCHITECTURE.name=ResNet18",
            "TRAIN.batch_size=32", "VALID.batch_size=32", "seed=0", "cpu_threads=1",
            "LEARNING_RATE.params.lr=0.02", "LEARNING_RATE.params.warmup_epoch=0",
            "print_interval=1", "validate=False", *extra]


def cli_args(overrides):
    return [a for o in overrides for a in ("-o", o)]


def tool_env(**extra):
    return dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", **extra)


def run_tool(args, cwd, **kw):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=tool_env(), capture_output=True,
                          text=True, timeout=600, **kw)


def run_and_kill(cmd, cwd, should_kill, env=None, timeout=300):
    """Run ``cmd``; SIGKILL it as soon as ``should_kill(lines so far)`` is true.
    Returns (killed, output, the killed process's child processes)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, q = [], queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    deadline, killed, kids = time.time() + timeout, False, []
    try:
        while time.time() < deadline:
            try:
                line = q.get(timeout=0.02)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                lines.append(line)
            if should_kill(lines):
                kids = children(proc.pid)
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
    finally:
        if proc.poll() is None and not killed:
            proc.kill()
        proc.wait(timeout=60)
    return killed, "".join(lines), kids


def step_lines(lines):
    return sum("train step:" in l for l in lines)


def assert_same_weights(a_prefix, b_prefix):
    a, b = ckpt.load_params_file(a_prefix), ckpt.load_params_file(b_prefix)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


# ---------------------------------------------------------------------------- 1. kill and resume
def test_sigkill_at_a_random_step_and_during_a_save_then_resume_auto_equals_an_uninterrupted_run(
        digits_dir, tmp_path):
    epochs, steps = 3, 3                                   # 96 images, batch 32
    ov = tiny_overrides(digits_dir, tmp_path, n_train=96, extra=[f"epochs={epochs}"])
    base = [sys.executable, TRAIN_PY, "-c", DEMO_CFG, *cli_args(ov)]
    out = tmp_path / "out"
    arch = str(out / "ResNet18")
    ref_log = open(tmp_path / "reference.log", "w")
    reference = subprocess.Popen(base + ["-o", f"model_save_dir={tmp_path / 'ref'}"], cwd=tmp_path,
                                 env=tool_env(), stdout=ref_log, stderr=subprocess.STDOUT)
    run = base + ["-o", f"model_save_dir={out}", "-o", "resume=auto"]

    # 1) killed after a random training step (seeded choice); its 2 loader workers end with it
    kill_after = random.Random(11).randint(2, epochs * steps - 2)
    killed, log1, workers = run_and_kill(run + ["-o", "TRAIN.num_workers=2"], tmp_path,
                                         lambda lines: step_lines(lines) >= kill_after)
    assert killed, log1[-3000:]
    assert len(workers) == 2
    wait_for(lambda: not any(alive(w) for w in workers), 30, "orphaned loader workers to end")

    # 2) resumed, then killed in the middle of its first checkpoint write
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS.format(root=ROOT))
    left = set(glob.glob(os.path.join(arch, "*.tmp-*")))        # run 1 may have died saving too
    partial = lambda _: any(os.path.dirname(f) not in left for f in glob.glob(  # noqa: E731
        os.path.join(arch, "*.tmp-*", "ppcls.pdparams")))
    killed, log2, _ = run_and_kill([sys.executable, str(harness), *run[1:]], tmp_path, partial,
                                   env=tool_env(FAULT="slow_save:60"))
    assert killed, log2[-3000:]
    half = glob.glob(os.path.join(arch, "*.tmp-*"))
    assert len(half) == 1 and not ckpt.is_complete(half[0])       # a half-written checkpoint
    half_epoch = int(os.path.basename(half[0]).split(".")[0])
    newest = ckpt.latest_checkpoint(arch)                        # never the half one
    if half_epoch == 0:
        assert newest is None
    else:
        assert newest == os.path.join(arch, str(half_epoch - 1), "ppcls")

    # 3) resumed again: cleans up, continues from the newest complete checkpoint, finishes
    p3 = subprocess.run(run, cwd=tmp_path, env=tool_env(), capture_output=True, text=True,
                        timeout=600)
    assert p3.returncode == 0, p3.stdout[-3000:] + p3.stderr[-3000:]
    assert f"checkpoint recovery: removed incomplete {half[0]}" in p3.stdout
    if newest:
        assert f"resumed from {newest}: continuing at epoch {half_epoch}" in p3.stdout
    else:
        assert "found no complete checkpoint" in p3.stdout
    assert not glob.glob(os.path.join(arch, "*.tmp-*")) and not glob.glob(os.path.join(arch, "*.old-*"))
    assert sorted(os.listdir(arch)) == [str(e) for e in range(epochs)] + ["metrics.csv"]
    assert reference.wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    ref_log.close()
    assert_same_weights(os.path.join(arch, str(epochs - 1), "ppcls"),
                        str(tmp_path / "ref" / "ResNet18" / str(epochs - 1) / "ppcls"))


def test_recovery_restores_a_checkpoint_replaced_at_the_moment_of_a_kill(tmp_path):
    """A kill between the two renames that replace best_model leaves best_model.old-<pid>."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = {"epoch": 4, "global_step": 40}
    params = {"w": np.ones(3, np.float32)}
    ckpt.save_checkpoint(str(tmp_path / f"best_model.old-{dead.pid}"), params, None, state)
    ckpt.save_checkpoint(str(tmp_path / "5"), params, None, dict(state, epoch=5))
    os.rename(tmp_path / "5", tmp_path / f"5.tmp-{dead.pid}")           # half: treated as such
    os.makedirs(tmp_path / f"6.tmp-{os.getpid() + 10 ** 7}")             # no such process
    live = tmp_path / f"7.tmp-{os.getppid()}"                            # a running process's
    os.makedirs(live)
    assert ckpt.latest_checkpoint(str(tmp_path)) is None
    actions = ckpt.recover_partial(str(tmp_path))
    assert f"restored {tmp_path / 'best_model'} from best_model.old-{dead.pid}" in actions
    assert sorted(os.listdir(tmp_path)) == sorted(["best_model", live.name])
    assert ckpt.load_checkpoint(str(tmp_path / "best_model" / "ppcls"))[2]["epoch"] == 4


# ---------------------------------------------------------------------------- 2. NaN / Inf loss
def nan_at(calls_to_poison, monkeypatch):
    """Make the loss NaN at the given (0-based) loss computations."""
    import ppcls.modeling.loss as loss_mod       # the training loss (LabelLoss) calls it
    real, count = loss_mod.cross_entropy, [0]

    def poisoned(*a, **k):
        loss = real(*a, **k)
        count[0] += 1
        return loss * float("nan") if count[0] - 1 in calls_to_poison else loss
    monkeypatch.setattr(loss_mod, "cross_entropy", poisoned)


def lr_at(cfg, steps_per_epoch, step):
    from ppcls.optimizer import build_lr_scheduler
    sched = build_lr_scheduler(cfg.LEARNING_RATE, steps_per_epoch, cfg.epochs)
    for _ in range(step):
        sched.step()
    return sched.get_lr()


def test_nan_loss_stops_naming_the_step_the_lr_and_the_last_good_checkpoint(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(n_train=64, extra=["epochs=3", "validate=False"])   # 2 steps per epoch
    nan_at({3}, monkeypatch)                                           # epoch 1, step 1
    with pytest.raises(TrainingError) as info:
        train(cfg)
    good = os.path.join(cfg.model_save_dir, "ResNet18", "0", "ppcls")
    assert str(info.value) == (f"loss is nan at epoch 1, step 1, lr {lr_at(cfg, 2, 3):.6g}; last good "
                               f"checkpoint: {good}. Lower the lr or set nan_policy: skip")
    assert ckpt.is_complete(os.path.dirname(good))
    assert sorted(os.listdir(os.path.join(cfg.model_save_dir, "ResNet18"))) == ["0", "metrics.csv"]


def test_nan_policy_skip_skips_up_to_the_limit_then_stops(tiny_cfg, monkeypatch, capsys):
    extra = ["epochs=2", "validate=False", "nan_policy=skip", "nan_max_skips=2"]
    nan_at({1, 2}, monkeypatch)
    cfg = tiny_cfg(n_train=64, extra=extra)
    train(cfg)
    log = capsys.readouterr().out
    for n, (epoch, step) in enumerate([(0, 1), (1, 0)], 1):
        assert (f"loss is nan at epoch {epoch}, step {step}, lr {lr_at(cfg, 2, 2 * epoch + step):.6g}: "
                f"batch skipped ({n}/2 allowed)") in log
    assert len(re.findall(r"train step:", log)) == 2                   # 4 batches, 2 skipped
    assert ckpt.is_complete(os.path.join(cfg.model_save_dir, "ResNet18", "1"))

    nan_at({0, 1, 3}, monkeypatch)
    cfg = tiny_cfg(n_train=64, extra=extra + [f"model_save_dir={cfg.model_save_dir}_2"])
    with pytest.raises(TrainingError) as info:
        train(cfg)
    good = os.path.join(cfg.model_save_dir, "ResNet18", "0", "ppcls")
    assert str(info.value) == (f"loss is nan at epoch 1, step 1, lr {lr_at(cfg, 2, 3):.6g}; 2 batch(es) "
                               f"already skipped, the nan_max_skips limit; last good checkpoint: "
                               f"{good}. Lower the lr and resume from it")


def test_a_huge_learning_rate_is_caught_as_nan_by_the_cli(digits_dir, tmp_path):
    ov = tiny_overrides(digits_dir, tmp_path, n_train=96, extra=[
        "epochs=2", "LEARNING_RATE.params.lr=1e12", f"model_save_dir={tmp_path / 'out'}"])
    p = run_tool([TRAIN_PY, "-c", DEMO_CFG, *cli_args(ov)], cwd=tmp_path)
    assert p.returncode == 2, p.stderr[-2000:]
    err = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    m = len(err) == 1 and re.fullmatch(
        r"error: loss is (nan|inf|-inf) at epoch (\d+), step (\d+), lr ([\d.e+]+); last good "
        r"checkpoint: (.*)\. Lower the lr or set nan_policy: skip", err[0])
    assert m, p.stderr[-2000:]
    epoch, step = int(m.group(2)), int(m.group(3))
    steps = re.findall(rf"epoch:{epoch}\s+, train step:(\d+)\s+, loss: ([\d.]+), lr: ([\d.]+)", p.stdout)
    assert [int(s) for s, _, _ in steps] == list(range(step))          # stopped at that step
    if epoch == 0:
        assert m.group(5) == "none saved yet"
    else:                                                            # named, and really there
        assert m.group(5) == str(tmp_path / "out" / "ResNet18" / str(epoch - 1) / "ppcls")
        assert ckpt.is_complete(os.path.dirname(m.group(5)))


# ---------------------------------------------------------------------------- 3. disk full / unwritable
def test_unwritable_model_save_dir_fails_at_start_and_writes_nothing(tiny_cfg, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(TrainingError, match=r"^model_save_dir: cannot write to .*a_file/out/ResNet18 "
                       r"\(.*a_file is a file\); set -o model_save_dir=<a writable folder>$"):
        train(tiny_cfg(extra=[f"model_save_dir={blocker / 'out'}"]))
    # a read-only folder (root ignores chmod, so the probe's open() is made to fail as it would)
    real_open = open

    def read_only(path, *a, **k):
        if ".ppcls-write-test" in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(run_state_mod, "open", read_only, raising=False)
    with pytest.raises(TrainingError, match=r"cannot write to .*ro/ResNet18 \(Read-only file system\)"):
        train(tiny_cfg(extra=[f"model_save_dir={tmp_path / 'ro'}"]))
    after = sorted(os.listdir(tmp_path))
    assert set(after) - set(before) <= {"train.txt", "val.txt"}      # the lists tiny_cfg wrote


def test_disk_full_during_a_save_keeps_the_previous_checkpoint_then_resume_finishes(
        tiny_cfg, monkeypatch):
    extra = ["epochs=2", "validate=False", "resume=auto"]
    cfg = tiny_cfg(n_train=64, extra=extra)
    arch = os.path.join(cfg.model_save_dir, "ResNet18")
    real_save, full = paddle.save, [True]

    def no_space(obj, path, *a, **k):
        if full[0] and f"{os.sep}1.tmp-" in path and path.endswith(".pdopt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **k)
    monkeypatch.setattr(paddle, "save", no_space)
    with pytest.raises(TrainingError, match=r"^could not save checkpoint .*ResNet18/1 \(No space left "
                       r"on device\); the previous checkpoints are intact\. Free disk space or "
                       r"change model_save_dir, then resume with -o resume=auto$"):
        train(cfg)
    assert sorted(os.listdir(arch)) == ["0", "metrics.csv"]           # no half-written leftovers
    epoch0 = ckpt.load_params_file(os.path.join(arch, "0", "ppcls"))
    full[0] = False                                                   # space freed
    result = train(tiny_cfg(n_train=64, extra=extra))
    assert sorted(os.listdir(arch)) == ["0", "1", "metrics.csv"] and result["bad_images"] == 0
    assert ckpt.load_checkpoint(os.path.join(arch, "1", "ppcls"))[2]["global_step"] == 4
    again = ckpt.load_params_file(os.path.join(arch, "0", "ppcls"))
    assert all(np.array_equal(epoch0[k], again[k]) for k in epoch0)


# ---------------------------------------------------------------------------- 4. bad data at scale
def make_bad_folder(digits_dir, root):
    """64 good digits plus every kind of odd and broken file; returns (lines, {kind: line})."""
    data = root / "data"
    os.makedirs(data / "odd")
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        good = [l.split() for l in f.read().splitlines() if l][::20][:64]
    lines = []
    for rel, label in good:
        os.makedirs(os.path.dirname(data / rel), exist_ok=True)
        shutil.copy(os.path.join(digits_dir, rel), data / rel)
        lines.append(f"{rel} {label}")
    rng = np.random.RandomState(0)
    img = cv2.GaussianBlur(rng.randint(0, 255, (40, 36, 3), np.uint8), (5, 5), 0)
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    from PIL import Image
    cmyk = io.BytesIO()
    Image.fromarray(img).convert("CMYK").save(cmyk, "JPEG")
    files = {
        "truncated": ("odd/truncated.jpg", jpg[: len(jpg) // 2]),
        "empty": ("odd/empty.jpg", b""),
        "text": ("odd/notes.jpg", b"this is not an image\n"),
        "png_as_jpg": ("odd/png_named.jpg", cv2.imencode(".png", img)[1].tobytes()),
        "cmyk": ("odd/cmyk.jpg", cmyk.getvalue()),
        "gray": ("odd/gray.jpg", cv2.imencode(".jpg", img[:, :, 0])[1].tobytes()),
        "png16": ("odd/deep.png", cv2.imencode(".png", img.astype(np.uint16) * 257)[1].tobytes()),
        "missing": ("odd/missing.jpg", None),
    }
    for i, (kind, (rel, payload)) in enumerate(files.items()):
        if payload is not None:
            (data / rel).write_bytes(payload)
        lines.insert(3 + 7 * i, f"{rel} {i}")
    where = {}
    for i, line in enumerate(lines, 1):
        for kind, (rel, _) in files.items():
            if line.startswith(rel + " "):
                where[kind] = i
    return data, lines, where, files


BROKEN = ("truncated", "empty", "text", "missing")
ODD = ("png_as_jpg", "cmyk", "gray", "png16")


def test_training_runs_through_broken_and_odd_images(digits_dir, tmp_path, capsys):
    data, lines, where, files = make_bad_folder(digits_dir, tmp_path)
    from ppcls.data.transforms import DecodeImage
    for kind in ODD:                                   # decodable odd formats: 8-bit RGB
        img = DecodeImage()(open(data / files[kind][0], "rb").read())
        assert img.shape == (40, 36, 3) and img.dtype == np.uint8, kind
    lst = write_list(tmp_path / "list.txt", lines)
    ov = tiny_overrides(digits_dir, tmp_path, extra=[
        f"TRAIN.data_dir={data}", f"TRAIN.file_list={lst}", "TRAIN.num_workers=2", "epochs=2",
        "max_bad_images=5", f"model_save_dir={tmp_path / 'out'}"])
    result = train(load_config(DEMO_CFG, ov))
    log = capsys.readouterr().out
    assert result["bad_images"] == len(BROKEN)
    assert f"list.txt: 1 listed file(s) not found, left out and counted as bad images:\n  " \
           f"line {where['missing']}: file not found: {data / files['missing'][0]}" in log
    for kind in BROKEN[:-1]:                           # named once, with the reason, over 2 epochs
        named = re.findall(rf"bad image skipped \(replaced by the next sample\): "
                           rf"{re.escape(str(data / files[kind][0]))}: (.*)", log)
        assert len(named) == 1, (kind, log[-3000:])
    assert "bad images skipped so far: 4" in log
    for kind in ODD:
        assert files[kind][0] not in log
    # past the limit the run stops, naming the tool that lists the problems
    ov[-2] = "max_bad_images=2"
    with pytest.raises(TrainingError, match=r"images failed to load, more than max_bad_images "
                       r"allows \(2\); run tools/check_dataset.py"):
        train(load_config(DEMO_CFG, ov + ["TRAIN.num_workers=0"]))


def test_check_dataset_reports_every_problem_with_its_line_in_one_pass(digits_dir, tmp_path):
    data, lines, where, files = make_bad_folder(digits_dir, tmp_path)
    for name in ("label12.png", "labelx.png"):
        shutil.copy(data / lines[0].split()[0], data / "odd" / name)
    lines += ["odd/label12.png 12", "odd/labelx.png x", "just_a_path.jpg", lines[0]]
    n = len(lines)
    lst = write_list(tmp_path / "list.txt", lines)
    p = run_tool([os.path.join(ROOT, "tools/check_dataset.py"), lst, str(data), "--classes_num", "10"],
                 cwd=tmp_path)
    assert p.returncode == 1, p.stderr[-2000:]
    errors = [l for l in p.stdout.splitlines() if l.startswith("error:")]
    expected = {
        where["truncated"]: "odd/truncated.jpg: truncated JPEG (no end-of-image marker)",
        where["empty"]: "odd/empty.jpg: empty file (0 bytes)",
        where["text"]: "odd/notes.jpg: cannot decode: not an image (unknown format)",
        where["missing"]: "odd/missing.jpg: file not found",
        n - 3: "odd/label12.png: label 12 outside [0, 10)",
        n - 2: "odd/labelx.png: label 'x' is not an integer",
        n - 1: "expected 'relative/path label', got 'just_a_path.jpg'",
    }
    assert errors == [f"error: {lst} line {k}: {v}" for k, v in sorted(expected.items())]
    notes = "\n".join(l for l in p.stdout.splitlines() if l.startswith("note:"))
    for kind, text in (("png_as_jpg", "PNG data in a .jpg file"), ("cmyk", "CMYK JPEG"),
                       ("gray", "grayscale JPEG"), ("png16", "16-bit PNG")):
        assert re.search(rf"note: .*: 1 {text} - decodes; trained as 8-bit RGB: line "
                         rf"{where[kind]} \({files[kind][0]}\)", notes), (kind, notes)
    assert f"1 listed twice: line {n} ({lines[0].split()[0]}, first on line 1)" in notes
    assert re.fullmatch(rf"{lst}: {n} line\(s\), \d+ class\(es\) used, 7 error\(s\), \d+ note\(s\)",
                        p.stdout.splitlines()[-1])
    clean = write_list(tmp_path / "clean.txt", lines[:3])
    ok = run_tool([os.path.join(ROOT, "tools/check_dataset.py"), clean, str(data)], cwd=tmp_path)
    assert ok.returncode == 0 and "0 error(s)" in ok.stdout


# ---------------------------------------------------------------------------- 5. bad config and weights
def wrong_values(fields, prefix=""):
    """(override, key) pairs: a wrong type, and out-of-range values, for every schema key."""
    from ppcls.utils import config as c
    for key, field in fields.items():
        path = f"{prefix}{key}"
        if isinstance(field, Section):
            yield f"{path}=5", path
            yield from wrong_values(field.fields, path + ".")
            continue
        bad = {c.Bool: "maybe", c.Int: "abc", c.Float: "abc", c.Str: "123", c.Choice: "bogus",
               c.IntList: "abc", c.AnyDict: "5", c.OpList: "5", c.WeightsPaths: "5"}[type(field)]
        yield f"{path}={bad}", path
        if getattr(field, "min", None) is not None:
            yield f"{path}={field.min - 1}", path
        if getattr(field, "max", None) is not None:
            yield f"{path}={field.max + 1}", path


def test_every_config_key_with_a_wrong_type_or_value_is_one_clear_error(digits_dir, tmp_path):
    base = tiny_overrides(digits_dir, tmp_path)
    cases = list(wrong_values(SCHEMA)) + [
        ("ARCHITECTURE.name=NoSuchNet", "ARCHITECTURE.name"),
        ("LEARNING_RATE.function=Bogus", "LEARNING_RATE"),
        ("OPTIMIZER.function=Bogus", "OPTIMIZER"),
        ("LEARNING_RATE.params.bogus=1", "LEARNING_RATE.params.bogus"),
        ("TRAIN.batch_sizes=3", "TRAIN.batch_sizes"),
    ]
    assert len(cases) > 60
    for override, key in cases:
        with pytest.raises(ConfigError) as info:
            load_config(DEMO_CFG, base + [override])
        msg = str(info.value)
        assert f": {key}" in msg and "\n" not in msg, (override, msg)
    # values only the run can judge: still one user error, before anything is written
    from ppcls.utils.cli import user_errors
    out = tmp_path / "never"
    runtime = [["seed=-1"], ["TRAIN.transforms=[]"], ["TRAIN.transforms=[{ToCHWImage: {}}]"],
               ["validate=True", "VALID.transforms=[{DecodeImage: {}}]"], ["vdl_dir=/dev/null/x"],
               [f"checkpoints={tmp_path / 'nothing'}"], ["epochs=1", "LEARNING_RATE.params.warmup_epoch=2"]]
    if not paddle.is_compiled_with_cuda():
        runtime.append(["use_gpu=True"])
    for overrides in runtime:
        with pytest.raises(user_errors()) as info:
            train(load_config(DEMO_CFG, base + [f"model_save_dir={out}", *overrides]))
        assert "\n" not in str(info.value), (overrides, str(info.value))
        assert not out.exists(), overrides


def test_bad_recipes_and_weights_fail_with_one_error_line_and_write_nothing(digits_dir, tmp_path):
    from ppcls.modeling import build_model
    weights = tmp_path / "w"
    os.makedirs(weights)
    paddle.save(build_model("ResNet34", class_dim=10).state_dict(), str(weights / "r34.pdparams"))
    paddle.save(build_model("ResNet18", class_dim=10).state_dict(), str(weights / "r18.pdparams"))
    whole = (weights / "r18.pdparams").read_bytes()
    (weights / "cut.pdparams").write_bytes(whole[: len(whole) // 2])
    cwd = tmp_path / "cwd"
    os.makedirs(cwd)
    base = tiny_overrides(digits_dir, tmp_path, extra=["epochs=1", f"model_save_dir={cwd / 'out'}"])
    cases = {
        "epochs=three": "epochs: expected an integer, got 'three'",
        "ARCHITECTURE.name=ResNet19": "ARCHITECTURE.name: unknown architecture 'ResNet19'",
        f"pretrained_model={weights / 'r34'}": "r34.pdparams does not fit ResNet",
        f"pretrained_model={weights / 'cut'}": "cut.pdparams: it is truncated or not a Paddle weights file",
    }
    for override, text in cases.items():
        p = run_tool([TRAIN_PY, "-c", DEMO_CFG, *cli_args(base + [override])], cwd=cwd)
        first = (p.stderr.splitlines() or [""])[0]
        assert p.returncode == 2 and first.startswith("error: ") and text in first, (override, p.stderr)
        assert "Traceback" not in p.stderr
        assert os.listdir(cwd) == [], (override, os.listdir(cwd))


# ---------------------------------------------------------------------------- 6. distributed faults
def launch(tmp_path, digits_dir, script_args, env=None):
    ov = tiny_overrides(digits_dir, tmp_path, n_train=128, extra=[
        "epochs=50", f"model_save_dir={tmp_path / 'out'}"])
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
           str(tmp_path / "log"), *script_args, "-c", DEMO_CFG, *cli_args(ov)]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env or tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        return int(env.get(b"PADDLE_TRAINER_ID", b"-1"))
    except OSError:
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()                  # a zombie has ended
    except OSError:
        return False


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def finish(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the launch hung for more than {timeout} s after a worker died:\n{out[-3000:]}")
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_a_killed_worker_ends_the_whole_launch_quickly(digits_dir, tmp_path):
    proc = launch(tmp_path, digits_dir, [TRAIN_PY])
    log1 = tmp_path / "log" / "workerlog.1"
    wait_for(lambda: log1.exists() and "train step:1 " in log1.read_text(), 300, "rank 1 to train")
    workers = {rank_of(c): c for c in children(proc.pid)}
    workers = {r: c for r, c in workers.items() if r in (0, 1)}
    assert set(workers) == {0, 1}, workers
    os.kill(workers[1], signal.SIGKILL)
    t0 = time.time()
    out = finish(proc, 120)
    elapsed = time.time() - t0
    print(f"launch exited {elapsed:.1f} s after SIGKILL of rank 1, code {proc.returncode}")
    assert proc.returncode != 0 and elapsed < 60
    assert f"worker logs on this node: {tmp_path / 'log' / 'workerlog.0'}, {log1}" in out
    assert re.search(r"Container rank [01] status failed .* log .*workerlog\.[01]", out)
    wait_for(lambda: not any(alive(pid) for pid in workers.values()), 30, "the workers to end")


def test_a_worker_error_ends_the_launch_and_names_that_rank_and_its_log(digits_dir, tmp_path):
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS.format(root=ROOT))
    t0 = time.time()
    proc = launch(tmp_path, digits_dir, [str(harness), TRAIN_PY], env=tool_env(FAULT="raise_rank1:3"))
    out = finish(proc, 300)
    log1 = tmp_path / "log" / "workerlog.1"
    print(f"launch exited {time.time() - t0:.1f} s after start, code {proc.returncode}")
    assert proc.returncode != 0
    assert "error: injected fault on rank 1" in log1.read_text()
    assert (f"error: worker rank 1 failed (TrainingError: injected fault on rank 1); its log: "
            f"{log1}") in out


# ---------------------------------------------------------------------------- 7. untrusted files
def test_a_pytorch_pickle_with_code_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from ppcls.convert.core import ConversionError, load_source

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))
    torch.save({"conv.weight": torch.zeros(2, 2), "evil": Payload()}, str(tmp_path / "evil.pth"))
    with pytest.raises(ConversionError, match="weights_only=True"):
        load_source(str(tmp_path / "evil.pth"))
    assert not (tmp_path / "pwned").exists()
    torch.save({"conv.weight": torch.ones(2, 2)}, str(tmp_path / "ok.pth"))
    assert load_source(str(tmp_path / "ok.pth"))["conv.weight"].sum().item() == 4


def test_a_weights_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    """paddle.load unpickles without limits; weights files are checked first."""
    monkeypatch.chdir(tmp_path)
    write_code_running_pdparams(tmp_path / "evil.pdparams")
    with pytest.raises(ckpt.CheckpointError, match=r"^refusing to load .*evil\.pdparams: it calls "
                       r"(posix|os)\.system when unpickled"):
        ckpt.load_params_file(str(tmp_path / "evil"))
    assert not (tmp_path / "pwned").exists()
    paddle.save({"fc.weight": np.ones(2, np.float32)}, str(tmp_path / "ok.pdparams"))
    assert ckpt.load_params_file(str(tmp_path / "ok"))["fc.weight"].sum() == 2

"""tools/compare.py: variants x seeds, the summary statistics, skip / resume of runs."""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT, write_list
from ppcls.analysis import compare as cmp
from ppcls.analysis.compare_report import differences, markdown, summarize, write_csv
from ppcls.analysis.compare_runs import parse_run_log, run_result
from ppcls.analysis.compare_stats import describe, t_quantile, welch_interval


# ----------------------------------------------------------------------------- statistics
def test_describe_by_hand():
    d = describe([0.90, 0.92, 0.94])
    # mean 2.76 / 3 = 0.92; squared deviations 0.0004 + 0 + 0.0004 over n - 1 = 2 -> sd 0.02
    assert d.n == 3 and d.mean == pytest.approx(0.92) and d.std == pytest.approx(0.02)
    assert (d.min, d.max) == (0.90, 0.94)
    one = describe([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.std)
    assert describe([]).n == 0 and math.isnan(describe([]).mean)


@pytest.mark.parametrize("df, p, printed", [
    # two-sided 95% (p = 0.975) and one-sided 95% (p = 0.95) rows of a printed t table
    (1, 0.975, 12.706), (2, 0.975, 4.303), (3, 0.975, 3.182), (4, 0.975, 2.776),
    (5, 0.975, 2.571), (10, 0.975, 2.228), (30, 0.975, 2.042), (120, 0.975, 1.980),
    (math.inf, 0.975, 1.960), (10, 0.95, 1.812), (4, 0.995, 4.604), (2, 0.9, 1.886)])
def test_t_quantile_matches_the_table(df, p, printed):
    assert t_quantile(p, df) == pytest.approx(printed, abs=5e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df))


def test_t_quantile_fractional_df_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1.5, 3.723, 7.9, 55.5):
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)


def test_welch_interval_by_hand():
    # [1, 2, 3] vs [4, 5, 6]: diff -3, both variances 1, se^2 = 1/3 + 1/3 = 2/3,
    # df = (2/3)^2 / ((1/3)^2 / 2 * 2) = 4, t(0.975, 4) = 2.7764 (table):
    # half width 2.7764 * sqrt(2/3) = 2.2670 -> [-5.2670, -0.7330]
    d = welch_interval([1, 2, 3], [4, 5, 6])
    assert d.diff == pytest.approx(-3.0) and d.df == pytest.approx(4.0)
    assert d.low == pytest.approx(-5.2670, abs=2e-4) and d.high == pytest.approx(-0.7330, abs=2e-4)
    assert d.excludes_zero() and d.verdict() == "worse" and d.verdict(higher_is_better=False) == "better"

    # unequal variances: a = [.90, .92, .94] (s^2 = .0004), b = [.85, .86, .90] (s^2 = .0007):
    # diff 0.05, se^2 = .0011 / 3, df = (.0011/3)^2 / (((.0004/3)^2 + (.0007/3)^2) / 2)
    # = 2 * 1.21 / 0.65 = 3.72308; t lies between the table's df 3 (3.182) and df 4 (2.776)
    d = welch_interval([0.90, 0.92, 0.94], [0.85, 0.86, 0.90])
    assert d.diff == pytest.approx(0.05) and d.df == pytest.approx(2 * 1.21 / 0.65)
    half = (d.high - d.low) / 2
    se = math.sqrt(0.0011 / 3)
    assert 2.776 * se < half < 3.182 * se
    assert d.low < 0 < d.high and d.verdict() == "no clear difference"

    assert welch_interval([0.5], [0.4, 0.6]).verdict() == "too few runs"
    same = welch_interval([0.7, 0.7], [0.6, 0.6])      # no spread: a zero-width interval
    assert (same.low, same.high) == pytest.approx((0.1, 0.1)) and same.verdict() == "better"


def _record(seed, best, final, loss, curve):
    return {"seed": seed, "seconds": 10.0 + seed, "topk": "top5",
            "metrics": {"best_top1": best, "final_top1": final, "best_topk": 1.0,
                        "final_topk": 1.0, "best_loss": loss, "final_loss": loss,
                        "final_train_loss": loss, "ips": 100.0, "best_top1_epoch": 1},
            "curves": {"valid_top1": curve, "train_loss": [[0, 2.0], [1, loss]]}}


def test_summary_tables(tmp_path):
    variants = [cmp.Variant("base"), cmp.Variant("new", ("a=1",))]
    facts = {"base": {"params": 1_000_000, "gmacs": 0.5}, "new": {"params": 1_000_100, "gmacs": 0.5}}
    records = {"base": [_record(s, b, b, 0.5, [[0, 0.5], [1, b]]) for s, b in enumerate((0.90, 0.92, 0.94))],
               "new": [_record(s, b, b, 0.4, [[0, 0.6], [1, b]]) for s, b in enumerate((0.85, 0.86, 0.90))]}
    rows = summarize(variants, facts, records)
    diffs = differences(variants, records)
    path, diff_path = write_csv(str(tmp_path / "summary.csv"), rows, diffs, "5")
    with open(path) as f:
        table = {r["variant"]: r for r in csv.DictReader(f)}
    # in percent: base 92 +- 2 [90, 94]; new: mean 87, sd sqrt(0.0007) = 2.6458 [85, 90]
    assert float(table["base"]["best_top1_mean"]) == pytest.approx(92.0)
    assert float(table["base"]["best_top1_std"]) == pytest.approx(2.0)
    assert float(table["new"]["final_top1_std"]) == pytest.approx(100 * math.sqrt(0.0007), abs=1e-5)
    assert (table["new"]["best_top1_min"], table["new"]["best_top1_max"]) == ("85.000000", "90.000000")
    assert table["base"]["seeds"] == "0 1 2" and table["new"]["params"] == "1000100"
    with open(diff_path) as f:
        d = {r["metric"]: r for r in csv.DictReader(f)}
    assert float(d["best_top1"]["difference"]) == pytest.approx(-5.0)     # new minus base, in pp
    assert d["best_top1"]["verdict"] == "no clear difference"
    assert d["final_loss"]["verdict"] == "better"       # 0.4 vs 0.5 without spread: lower loss
    text = markdown(rows, diffs, "5", title="t")
    assert "| base | 3 | 1.00 | 0.500 | 92.00 ± 2.00 [90.00, 94.00]" in text
    assert "| new | best top-1 (%) | -5.00 |" in text and "best top-5 (%)" in text


# ----------------------------------------------------------------------------- the plan
def test_variants_and_grid():
    v = cmp.parse_variant("eca:ARCHITECTURE.params.attention=eca,ARCHITECTURE.params.k_size=[3,5,7,7]")
    assert v.name == "eca" and v.overrides == ("ARCHITECTURE.params.attention=eca",
                                               "ARCHITECTURE.params.k_size=[3,5,7,7]")
    assert cmp.parse_variant("baseline") == cmp.Variant("baseline", ())
    with pytest.raises(cmp.CompareError, match="not key=value"):
        cmp.parse_variant("x:epochs")
    grid = cmp.parse_grid(["LEARNING_RATE.params.lr=0.1,0.2", "TRAIN.batch_size=32,64",
                           "VALID.batch_size=8"])
    assert [g.name for g in grid] == [
        "lr=0.1,TRAIN.batch_size=32,VALID.batch_size=8", "lr=0.1,TRAIN.batch_size=64,VALID.batch_size=8",
        "lr=0.2,TRAIN.batch_size=32,VALID.batch_size=8", "lr=0.2,TRAIN.batch_size=64,VALID.batch_size=8"]
    assert grid[1].overrides == ("LEARNING_RATE.params.lr=0.1", "TRAIN.batch_size=64", "VALID.batch_size=8")
    both = cmp.combine([cmp.Variant("a"), cmp.Variant("b", ("x=1",))], cmp.parse_grid(["y=1,2"]))
    assert [(c.name, c.overrides) for c in both] == [
        ("a+y=1", ("y=1",)), ("a+y=2", ("y=2",)), ("b+y=1", ("x=1", "y=1")), ("b+y=2", ("x=1", "y=2"))]
    with pytest.raises(cmp.CompareError, match="unique"):
        cmp.combine([cmp.Variant("a"), cmp.Variant("a", ("x=1",))], [])
    with pytest.raises(cmp.CompareError, match="value1,value2"):
        cmp.parse_grid(["lr="])
    plan = cmp.make_plan([cmp.Variant("a"), cmp.Variant("b/c")], [0, 1], "out")
    assert [(r.variant.name, r.seed) for r in plan] == [("a", 0), ("b/c", 0), ("a", 1), ("b/c", 1)]
    assert plan[1].dir == os.path.join("out", "b_c", "seed0")


def test_foreign_run_folder_and_lock(tmp_path):
    run = cmp.make_plan([cmp.Variant("a", ("x=1",))], [0], str(tmp_path))[0]
    facts = {"config_sha256": "abc"}
    os.makedirs(run.dir)
    cmp.write_json(run.path("run.json"), {"overrides": ["x=2"], "seed": 0, "config_sha256": "abc"})
    with pytest.raises(cmp.CompareError, match="belongs to another comparison.*overrides"):
        cmp.is_done(run, facts)
    cmp.write_json(run.path("run.json"), {"overrides": ["x=1"], "seed": 0, "config_sha256": "abc"})
    assert not cmp.is_done(run, facts)
    lock = cmp.OutputLock(str(tmp_path))
    with pytest.raises(cmp.CompareError, match="another tools/compare.py"):
        cmp.OutputLock(str(tmp_path))
    lock.release()
    cmp.OutputLock(str(tmp_path)).release()


def test_resumed_log_keeps_the_last_attempt_of_each_epoch(tmp_path):
    t = "2021-04-09 11:43:34 INFO: "
    lines = [f"{t}compare: attempt 1 of a seed 0: python tools/train.py -o epochs=2",
             f"{t}epoch:0  , train step:0   , loss: 2.00000, lr: 0.1, ips: 10.0 images/sec.",
             f"{t}END epoch:0   train loss: 2.00000, top1: 0.1, lr: 0.1, ips: 10.00000 images/sec.",
             f"{t}END epoch:0   valid top1: 0.50000, top5: 0.90000, loss: 1.50000,  ips: 5.0 images/sec.",
             f"{t}epoch:1  , train step:0   , loss: 9.00000, lr: 0.05, ips: 10.0 images/sec.",
             f"{t}compare: attempt 2 of a seed 0: python tools/train.py -o epochs=2",
             f"{t}resumed from x/0/ppcls: continuing at epoch 1",
             f"{t}epoch:1  , train step:0   , loss: 1.00000, lr: 0.05, ips: 10.0 images/sec.",
             f"{t}epoch:1  , train step:1   , loss: 0.50000, lr: 0.05, ips: 10.0 images/sec.",
             f"{t}END epoch:1   valid top1: 0.70000, top5: 1.00000, loss: 0.80000,  ips: 5.0 images/sec."]
    log = write_list(tmp_path / "train.log", lines)
    run = parse_run_log(log)
    assert [s["loss"] for s in run.steps[1]] == [1.0, 0.5]        # the killed attempt's step is gone
    assert run_result(run, epochs=2) is None                        # no END train line of epoch 1
    with open(log, "a") as f:
        f.write(f"{t}END epoch:1   train loss: 0.75000, top1: 0.8, lr: 0.0, ips: 30.00000 images/sec.\n")
    result = run_result(parse_run_log(log), epochs=2)
    m = result["metrics"]
    assert (m["best_top1"], m["final_top1"], m["best_top1_epoch"]) == (0.7, 0.7, 1)
    assert (m["best_loss"], m["final_loss"], m["final_train_loss"], m["ips"]) == (0.8, 0.8, 0.75, 20.0)
    assert result["topk"] == "top5" and result["curves"]["valid_top1"] == [[0, 0.5], [1, 0.7]]


FAKE_TRAINER = """
import sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
seed = int(args["seed"])
if args.get("fail") == "input":
    print("error: TRAIN.file_list: no such file"); sys.exit(2)
if args.get("fail") == "crash" and seed == 1:
    sys.exit(1)
t = "2021-04-09 11:43:34 INFO: "
for e in range(2):
    top1 = 0.5 + 0.1 * e + 0.01 * seed + float(args.get("bonus", 0))
    print(f"{t}END epoch:{e}   train loss: {1 - 0.1 * e:.5f}, top1: 0.5, lr: 0.1, ips: {100 + seed}.0 images/sec.")
    print(f"{t}END epoch:{e}   valid top1: {top1:.5f}, top5: 0.90000, loss: {2 - e:.5f},  ips: 5.0 images/sec.")
"""


def test_runner_with_a_stand_in_trainer(tmp_path):
    """run_plan with a stand-in for tools/train.py that prints known END lines: what it
    records, skips and reports, without training anything."""
    from ppcls.analysis.compare_report import write_report
    fake = tmp_path / "fake_train.py"
    fake.write_text(FAKE_TRAINER)
    variants = [cmp.Variant("base"), cmp.Variant("plus", ("bonus=0.05",))]
    facts = {v.name: {"config_sha256": "h", "arch": "A", "epochs": 2, "validate": True,
                      "params": 10, "gmacs": 0.1} for v in variants}
    out = str(tmp_path / "out")
    plan = cmp.make_plan(variants, [0, 1, 2], out)
    said = []
    failed = cmp.run_plan(plan, "recipe.yaml", facts, workers=2, threads=1,
                          train_cmd=[sys.executable, str(fake)], echo=said.append, poll=0.02)
    assert failed == [] and "6 runs, 0 already done; 2 at a time, 1 CPU thread(s) each" in said[0]
    rec = json.loads(open(os.path.join(out, "plus", "seed2", "done.json")).read())
    # seed 2, epoch 1: 0.5 + 0.1 + 0.02 + 0.05
    assert rec["metrics"]["final_top1"] == pytest.approx(0.67) and rec["metrics"]["ips"] == 102.0
    assert rec["overrides"] == ["bonus=0.05"] and rec["attempts"] == 1
    said.clear()
    assert cmp.run_plan(plan, "recipe.yaml", facts, train_cmd=[sys.executable, str(fake)],
                        echo=said.append) == []
    assert said == ["6 runs, 6 already done; 1 at a time, %d CPU thread(s) each"
                    % max(1, cmp.available_cores())]
    text, paths = write_report(out, variants, facts, plan)
    with open(os.path.join(out, "summary.csv")) as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    # base final top-1 over seeds 0, 1, 2: 60, 61, 62 (%) -> mean 61, sd 1
    assert float(rows["base"]["final_top1_mean"]) == pytest.approx(61.0)
    assert float(rows["base"]["final_top1_std"]) == pytest.approx(1.0)
    with open(os.path.join(out, "differences.csv")) as f:
        d = {r["metric"]: r for r in csv.DictReader(f)}
    # plus - base = 5 pp in every seed: both sds 1, se = sqrt(2/3), df 4 -> 5 +- 2.2670
    assert float(d["final_top1"]["difference"]) == pytest.approx(5.0)
    assert float(d["final_top1"]["ci_low"]) == pytest.approx(5 - 2.2670, abs=2e-4)
    assert d["final_top1"]["verdict"] == "better"
    assert "| plus | final top-1 (%) | +5.00 | [+2.73, +7.27] | 4.0 | better |" in text

    crash = cmp.make_plan([cmp.Variant("c", ("fail=crash",))], [0, 1], out)
    facts["c"] = dict(facts["base"])
    failed = cmp.run_plan(crash, "recipe.yaml", facts, threads=1,
                          train_cmd=[sys.executable, str(fake)], echo=said.append, poll=0.02)
    assert [r.seed for r in failed] == [1] and not os.path.exists(crash[1].path("done.json"))
    assert any("FAILED c seed 1 (exit code 1)" in s for s in said)
    bad = cmp.make_plan([cmp.Variant("i", ("fail=input",))], [0, 1], out)
    facts["i"] = dict(facts["base"])
    with pytest.raises(cmp.CompareError, match="i seed 0 stopped on an input error(.|\n)*no such file"):
        cmp.run_plan(bad, "recipe.yaml", facts, threads=1, train_cmd=[sys.executable, str(fake)],
                     echo=said.append, poll=0.02)
    assert not os.path.exists(bad[1].dir)                   # the next run was not started


# ----------------------------------------------------------------------------- end to end
def _tiny_recipe(digits_dir, tmp_path):
    with open(os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml")) as f:
        cfg = yaml.safe_load(f)
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        train = [l.strip() for l in f if l.strip()][::36]           # 40 images, every class
    with open(os.path.join(digits_dir, "val_list.txt")) as f:
        val = [l.strip() for l in f if l.strip()][::18]             # 20 images
    cfg.update(ARCHITECTURE={"name": "ResNet18", "params": {}}, epochs=2, print_interval=1,
               use_static_eval=False, LEARNING_RATE={"function": "Cosine", "params": {"lr": 0.02}})
    for section, lines in (("TRAIN", train), ("VALID", val)):
        cfg[section].update(data_dir=digits_dir, num_workers=0, batch_size=20,
                            file_list=write_list(tmp_path / f"{section}.txt", lines))
    cfg["VALID"]["label_list"] = os.path.join(digits_dir, "label_list.txt")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_two_variants_two_seeds_killed_and_resumed(digits_dir, tmp_path, capsys):
    """A 2 x 2 comparison killed (SIGKILL to its process group) while its second run trains;
    the same command then skips the finished run, resumes the killed one, and runs the rest."""
    recipe = _tiny_recipe(digits_dir, tmp_path)
    out = tmp_path / "cmp"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "compare.py"), "-c", recipe, "--seeds", "2",
           "--threads", "1", "--out", str(out), "--variant", "none",
           "--variant", "eca:ARCHITECTURE.params.attention=eca"]
    first, second = out / "none" / "seed0", out / "eca" / "seed0"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (second / "ResNet18" / "0" / "ppcls.pdparams").exists():   # epoch 0 saved
            assert proc.poll() is None and time.time() < deadline, "comparison ended early"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (first / "done.json").exists() and not (second / "done.json").exists()
    kept = {p: (first / p).read_bytes() for p in ("train.log", "done.json", "run.json")}

    from tools.compare import main                      # the same command, in this process
    assert main(cmd[2:]) == 0
    printed = capsys.readouterr().out
    assert "4 runs, 1 already done" in printed
    assert {p: (first / p).read_bytes() for p in kept} == kept       # skipped: not touched
    log = (second / "train.log").read_text()
    assert "compare: attempt 2 of eca seed 0" in log and "resumed from" in log
    assert json.loads((second / "run.json").read_text())["attempts"][0].get("returncode") is None
    for v in ("none", "eca"):
        for s in (0, 1):
            rec = json.loads((out / v / f"seed{s}" / "done.json").read_text())
            assert rec["seed"] == s and len(rec["curves"]["valid_top1"]) == 2
            assert not (out / v / f"seed{s}" / "ResNet18" / "1").exists()      # epochs removed
    with open(out / "summary.csv") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert rows["none"]["runs"] == rows["eca"]["runs"] == "2"
    assert int(rows["eca"]["params"]) - int(rows["none"]["params"]) == 2 * 3 + 2 * 5 * 3   # k 3,5,5,5
    with open(out / "differences.csv") as f:
        assert {r["metric"] for r in csv.DictReader(f)} >= {"best_top1", "final_top1"}
    assert (out / "compare_top1.png").stat().st_size > 1000 and (out / "compare_train_loss.png").exists()
    assert "| eca | best top-1 (%) |" in (out / "summary.md").read_text()

    assert main(cmd[2:] + ["--dry-run"]) == 0                # every run is done now
    assert capsys.readouterr().out.count("(done)") == 4


def test_demo_training_subset(digits_dir, tmp_path):
    """prepare_demo_data --train_per_class: N training images per digit, the same validation."""
    from tools.prepare_demo_data import prepare
    assert prepare(str(tmp_path), train_per_class=3) == (30, 359)
    with open(tmp_path / "train_list.txt") as f:
        labels = [line.split()[1] for line in f]
    assert sorted(labels) == sorted([str(d) for d in range(10)] * 3)
    assert (tmp_path / "val_list.txt").read_text() == open(os.path.join(digits_dir, "val_list.txt")).read()
    with open(os.path.join(digits_dir, "train_list.txt")) as f:
        full = set(f.read().split("\n"))
    assert set((tmp_path / "train_list.txt").read_text().strip().split("\n")) <= full

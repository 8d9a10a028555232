"""tools/benchmark.py smoke test (a tiny model, 1 warm-up, 2 iterations: the tool works and its
arithmetic is right; speed itself is measured by the tool, not by tests) and the pre-import CPU
environment (ppcls.utils.cpu_env) of the command-line tools."""
import json
import os
import subprocess
import sys

import pytest

from ppcls.analysis import benchmark as bm
from ppcls.utils.cpu_env import mkl_avx2_switch, prepare_cpu_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMD = ("AuthenticAMD", {"sse2", "avx", "avx2", "fma"})


def run_tool(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


# ----------------------------------------------------------------------------- cpu_env
def test_mkl_avx2_switch_only_on_amd_with_avx2_and_never_over_the_user():
    assert mkl_avx2_switch({}, AMD) == ("MKL_DEBUG_CPU_TYPE", "5")
    assert mkl_avx2_switch({}, ("GenuineIntel", AMD[1])) is None
    assert mkl_avx2_switch({}, ("AuthenticAMD", {"sse2", "avx"})) is None
    assert mkl_avx2_switch({"MKL_DEBUG_CPU_TYPE": "2"}, AMD) is None
    assert mkl_avx2_switch({"PPCLS_NO_MKL_AVX2": "1"}, AMD) is None
    env = {"PPCLS_NO_MKL_AVX2": "0"}
    assert prepare_cpu_env(env, AMD) == {"MKL_DEBUG_CPU_TYPE": "5"}
    assert env["MKL_DEBUG_CPU_TYPE"] == "5"
    user = {"MKL_DEBUG_CPU_TYPE": "2"}
    assert prepare_cpu_env(user, AMD) == {} and user == {"MKL_DEBUG_CPU_TYPE": "2"}


def test_engine_warns_when_paddle_was_imported_without_the_switch(monkeypatch):
    import warnings
    from ppcls.engine import env as run_env
    from ppcls.utils import cpu_env
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    monkeypatch.delenv("PPCLS_NO_MKL_AVX2", raising=False)
    monkeypatch.setattr(cpu_env, "_cpuinfo", lambda: AMD)
    with pytest.warns(RuntimeWarning, match="MKL_DEBUG_CPU_TYPE=5"):
        run_env.warn_slow_mkl()
    for setting in ({"MKL_DEBUG_CPU_TYPE": "5"}, {"PPCLS_NO_MKL_AVX2": "1"}):
        for k, v in setting.items():
            monkeypatch.setenv(k, v)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            run_env.warn_slow_mkl()
        for k in setting:
            monkeypatch.delenv(k)
    monkeypatch.setattr(cpu_env, "_cpuinfo", lambda: ("GenuineIntel", AMD[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_env.warn_slow_mkl()


# Records MKL_DEBUG_CPU_TYPE at the moment `paddle` is first imported (MKL reads it at load).
_PROBE = r"""
import os, runpy, sys
seen = {}
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "paddle" and "at_import" not in seen:
            seen["at_import"] = os.environ.get("MKL_DEBUG_CPU_TYPE")
        return None
sys.meta_path.insert(0, Probe())
sys.argv = [sys.argv[1]] + sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("PROBE", seen.get("at_import", "not imported"))
"""


@pytest.mark.parametrize("tool,args", [
    ("train.py", ["-c", "no_such_recipe.yaml"]),
    ("eval.py", ["-c", "no_such_recipe.yaml"]),
    ("benchmark.py", ["-a", "NoSuchModel"]),
])
def test_tools_set_the_cpu_env_before_importing_paddle(tool, args):
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_DEBUG_CPU_TYPE", "PPCLS_NO_MKL_AVX2")}
    expected = (mkl_avx2_switch(env) or (None, None))[1]
    out = subprocess.run([sys.executable, "-c", _PROBE, os.path.join(ROOT, "tools", tool), *args],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    line = [l for l in out.stdout.splitlines() if l.startswith("PROBE")]
    assert line == [f"PROBE {expected}"], out.stdout + out.stderr


# ----------------------------------------------------------------------------- cases
def test_compare_specs():
    assert [c.label for c in bm.parse_cases(None, "train", None, 2)] == \
        ["train:dygraph:default", "train:dygraph:1", "train:dygraph:2", "train:dygraph:1x2"]
    assert [c.label for c in bm.parse_cases("default", "eval", None, 2)] == \
        ["eval:dygraph:default", "eval:dygraph:2", "eval:static:2"]
    assert [c.label for c in bm.parse_cases("train:dygraph:1,eval::N,infer", "train", None, 3)] == \
        ["train:dygraph:1", "eval:static:3", "infer:paddle_inference:3"]
    assert [c.label for c in bm.parse_cases("default", "train", None, 1)] == \
        ["train:dygraph:default", "train:dygraph:1"]
    assert bm.parse_cases("eval:dygraph:default", "eval", None, 2)[0].paddle_defaults
    with pytest.raises(bm.BenchmarkError, match="Paddle's defaults"):
        bm.parse_cases("eval:static:default", "eval", None, 2)
    with pytest.raises(bm.BenchmarkError, match="THREADS must be a number"):
        bm.parse_cases("eval:dygraph:0", "eval", None, 2)
    assert bm.parse_cases("train:dygraph:2x3", "train", None, 2)[0] == bm.Case("train", "dygraph", 2, 3)
    assert bm.parse_cases("train:dygraph:1xN", "train", None, 4)[0] == bm.Case("train", "dygraph", 1, 4)
    with pytest.raises(bm.BenchmarkError, match="training only"):
        bm.parse_cases("eval:dygraph:1x2", "eval", None, 2)
    with pytest.raises(bm.BenchmarkError, match="training runs in dygraph only"):
        bm.parse_cases("train:static:1", "train", None, 2)
    with pytest.raises(bm.BenchmarkError, match="THREADS must be a number"):
        bm.parse_cases("eval:static:x", "eval", None, 2)
    with pytest.raises(bm.BenchmarkError, match="backend must be one of"):
        bm.parse_cases("eval:tensorrt", "eval", None, 2)


# ----------------------------------------------------------------------------- the tool
def test_benchmark_tool_prints_speed_flops_and_peak_fraction():
    from ppcls.modeling import build_model
    from ppcls.analysis.flops import count_macs
    cases = "train:dygraph:1,eval:dygraph:1,eval:static:1,infer:paddle_inference:1"
    out = run_tool("-a", "ResNet18", "--batch_size", "2", "--input_size", "32", "--warmup", "1",
                   "--iters", "2", "--compare", cases, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "benchmark: ResNet18, batch 2, 32x32" in text
    assert "SGEMM peak:" in text and "load average at start:" in text and "load average at end:" in text
    rows = [json.loads(l[len("JSON "):]) for l in text.splitlines() if l.startswith("JSON ")]
    assert [(r["mode"], r["backend"], r["threads"]) for r in rows] == \
        [tuple(c.split(":")[:2]) + (1,) for c in cases.split(",")]
    forward = 2 * count_macs(build_model("ResNet18", class_dim=1000), 32) / 1e9
    for r in rows:
        assert r["iters"] == 2 and r["batch_size"] == 2 and r["ips"] > 0
        assert r["ips_min"] <= r["ips"] <= r["ips_max"]
        assert r["gflops_per_image"] == pytest.approx((3 if r["mode"] == "train" else 1) * forward,
                                                      abs=1e-4)
        assert r["gflops"] == pytest.approx(r["ips"] * r["gflops_per_image"], rel=1e-3)
        assert r["peak_gflops"] > 0
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / r["peak_gflops"], rel=2e-3)
        assert "note" not in r                     # the predictor built: no dygraph fallback
    table = [l.split() for l in text.splitlines() if l.split()[:1] in (["train"], ["eval"], ["infer"])]
    assert [row[:3] for row in table] == [c.split(":") for c in cases.split(",")]
    assert table[0][-1] == "1.00x"


def test_paddle_defaults_baseline_runs_in_a_child_without_our_switches():
    env = dict(os.environ, MKL_DEBUG_CPU_TYPE="5", OMP_NUM_THREADS="2")
    out = run_tool("-a", "ResNet18", "--batch_size", "2", "--input_size", "32", "--warmup", "1",
                   "--iters", "3", "--peak", "none", "--json",
                   "--compare", "eval:dygraph:default,eval:dygraph:1,train:dygraph:default", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [json.loads(l[len("JSON "):]) for l in out.stdout.splitlines() if l.startswith("JSON ")]
    assert [(r["mode"], r["threads"]) for r in rows] == [("eval", "default"), ("eval", 1),
                                                           ("train", "default")]
    for r in rows:
        assert r["iters"] == 3 and r["ips"] > 0
    for r in (rows[0], rows[2]):
        assert r["note"] == "fresh process, Paddle's defaults: MKL_DEBUG_CPU_TYPE=unset"
    table = [l.split() for l in out.stdout.splitlines() if l.split()[:1] in (["train"], ["eval"])]
    assert [row[2] for row in table] == ["default", "1", "default"]
    assert table[0][8] == "1.00x" and table[2][8] == "1.00x"       # ratio: per mode


def test_data_parallel_processes_case_runs_under_launch():
    out = run_tool("-a", "ResNet18", "--batch_size", "4", "--input_size", "32", "--warmup", "1",
                   "--iters", "3", "--peak", "none", "--json", "--compare", "train:dygraph:1x2")
    assert out.returncode == 0, out.stdout + out.stderr
    row, = [json.loads(l[len("JSON "):]) for l in out.stdout.splitlines() if l.startswith("JSON ")]
    assert (row["threads"], row["procs"], row["batch_size"], row["iters"]) == (1, 2, 4, 3)
    assert row["ips"] > 0 and "2 data-parallel processes x 2 images" in row["note"]
    out = run_tool("-a", "ResNet18", "--batch_size", "3", "--peak", "none", "--compare",
                   "train:dygraph:1x2")
    assert out.returncode == 2 and "not divisible by 2 processes" in out.stderr


def test_benchmark_tool_rejects_bad_requests_with_one_line():
    out = run_tool("-a", "DLA61")
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown model 'DLA61'; did you mean ") and "DLA60" in last
    assert "Traceback" not in out.stderr
    out = run_tool("-a", "ResNet18", "--mode", "train", "--backend", "static")
    assert out.returncode == 2 and "training runs in dygraph only" in out.stderr
    assert "Traceback" not in out.stderr

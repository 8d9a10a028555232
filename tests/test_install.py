"""``pip install .`` and ``pip install -e .`` into fresh virtual environments, then the package
used from another folder: the wheel holds every module and the recipes, the console scripts run,
``ppcls.build_model`` works.

Offline and cheap: the wheel is built from a copy of the sources with this environment's
setuptools (--no-build-isolation, so nothing is downloaded), and each fresh venv (made without
pip) gets the already-installed dependencies (Paddle, NumPy, ...) through a .pth line pointing at
this environment's site-packages, instead of downloading ~1 GB again. The package itself comes
only from the wheel (or the editable install). The full path, a venv from the system Python with
``pip install -r requirements.txt`` then ``pip install .``, is described in README "Install".
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("ppcls-train", "ppcls-eval", "ppcls-export", "ppcls-infer", "ppcls-convert")


def _build_tools_reason():
    try:
        import setuptools
        import wheel  # noqa: F401 - setuptools < 70.1 builds wheels with it
    except ImportError as e:
        return f"offline build needs setuptools>=64 and wheel ({e}; pip install -r requirements.txt)"
    if int(setuptools.__version__.split(".")[0]) < 64:
        return f"setuptools {setuptools.__version__} < 64 cannot build editable installs"
    return None


pytestmark = pytest.mark.skipif(_build_tools_reason() is not None,
                                reason=str(_build_tools_reason()))


def run(cmd, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_sources(dst):
    """What a fresh checkout holds (no build/, egg-info or caches from earlier builds)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for name in ("ppcls", "configs", "tools"):
        shutil.copytree(os.path.join(ROOT, name), dst / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), dst / name)


def fresh_venv(path):
    """A venv without pip whose site-packages sees this environment's packages (not ppcls)."""
    run([sys.executable, "-m", "venv", "--without-pip", path], path.parent)
    python = path / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               path.parent).stdout.strip()
    with open(os.path.join(site, "_deps_of_the_test_environment.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([python, "-c", "import ppcls"], capture_output=True, cwd=str(path.parent))
    assert probe.returncode != 0, "ppcls is importable before the install: the test proves nothing"
    return python


USE = r'''
import json, os, sys
import ppcls
from ppcls.utils.paths import CONFIG_ROOT, IN_CHECKOUT
model = ppcls.build_model("DLA34")
cfg = ppcls.load_config("DLA60_best")           # a recipe shipped with the package
print(json.dumps({"file": ppcls.__file__, "model": type(model).__name__,
                  "classes": int(model.fc.weight.shape[0]), "in_checkout": IN_CHECKOUT,
                  "recipe": os.path.relpath(cfg._source, CONFIG_ROOT), "version": ppcls.__version__}))
'''


def test_pip_install_wheel_into_a_fresh_venv(tmp_path):
    src = tmp_path / "src"
    copy_sources(src)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", tmp_path / "dist", src], tmp_path)
    wheel_file, = glob.glob(str(tmp_path / "dist" / "ppcls_repro-*.whl"))
    names = set(zipfile.ZipFile(wheel_file).namelist())
    sources = {os.path.relpath(p, ROOT).replace(os.sep, "/")
               for p in glob.glob(os.path.join(ROOT, "ppcls", "**", "*.py"), recursive=True)}
    assert sources - names == set(), "modules missing from the wheel (pyproject.toml packages)"
    recipes = {"ppcls/" + os.path.relpath(p, ROOT).replace(os.sep, "/")
               for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.yaml"))}
    assert len(recipes) > 60 and recipes - names == set(), \
        "recipes missing from the wheel: list their configs/<Family> in pyproject.toml packages"
    assert not any(n.startswith(("tools/", "tests/")) for n in names)
    meta = zipfile.ZipFile(wheel_file).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines()
                if line.startswith("Requires-Dist:")]
    assert any(r.startswith("numpy") for r in requires)
    assert not any(r.lower().startswith("paddlepaddle") for r in requires), \
        "Paddle stays out of the dependencies (the user picks paddlepaddle or paddlepaddle-gpu)"

    python = fresh_venv(tmp_path / "venv")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", wheel_file], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = json.loads(run([python, "-c", USE], elsewhere).stdout.strip().splitlines()[-1])
    assert r["file"].startswith(str(tmp_path / "venv")) and r["file"].endswith("__init__.py")
    assert (r["model"], r["classes"], r["in_checkout"]) == ("DLA", 1000, False)
    assert r["recipe"] == os.path.join("configs", "DLA", "DLA60_best.yaml")
    # the console scripts: usage, and a user error as one line with exit code 2
    bindir = tmp_path / "venv" / "bin"
    for script in SCRIPTS:
        assert "usage: " + script in run([bindir / script, "-h"], elsewhere).stdout
    for script, args, message in (
            ("ppcls-train", ["-c", "missing.yaml"], "error: config file not found: missing.yaml"),
            ("ppcls-infer", ["--model_dir", "nowhere", "--benchmark"], "error: --model_dir nowhere not found")):
        bad = subprocess.run([bindir / script, *args], cwd=str(elsewhere), capture_output=True,
                             text=True, timeout=300)
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.strip().splitlines()[-1].startswith(message), bad.stderr


def test_pip_install_editable_into_a_fresh_venv(tmp_path):
    src = tmp_path / "src"
    copy_sources(src)
    python = fresh_venv(tmp_path / "venv")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--no-build-isolation", "-q", "-e", src], tmp_path)
    # an edit of the source shows without reinstalling
    with open(src / "ppcls" / "__init__.py", "a") as f:
        f.write("EDITED = True\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = json.loads(run([python, "-c", USE.replace('"version": ppcls.__version__',
                                                  '"version": ppcls.EDITED')],
                       elsewhere).stdout.strip().splitlines()[-1])
    assert r["file"] == str(src / "ppcls" / "__init__.py") and r["version"] is True
    assert (r["model"], r["in_checkout"]) == ("DLA", True)
    assert r["recipe"] == os.path.join("configs", "DLA", "DLA60_best.yaml")

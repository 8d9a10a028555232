"""Where the recipes (configs/) and the repository's files are, in a source checkout and in an
installed copy.

In a checkout (``git clone``, ``pip install -e .``) the package sits next to ``configs/`` and
``tools/``. ``pip install .`` ships the recipes inside the package (``ppcls/configs/``, see
pyproject.toml) but not tools/, tests/ or README.md.
"""
import glob
import os

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(PACKAGE_DIR)
IN_CHECKOUT = os.path.isdir(os.path.join(REPO_ROOT, "configs")) and \
    os.path.isdir(os.path.join(REPO_ROOT, "tools"))
# the folder that holds configs/<Family>/<Model>.yaml
CONFIG_ROOT = REPO_ROOT if IN_CHECKOUT else PACKAGE_DIR


def find_recipe(name):
    """Path of the shipped recipe ``name`` (``DLA60_best`` or ``quick_start/DLA46_c_digits``,
    with or without ``.yaml``), or None."""
    stem = name[:-len(".yaml")] if name.endswith(".yaml") else name
    pattern = os.path.join(CONFIG_ROOT, "configs", *stem.split("/")) + ".yaml" if "/" in stem \
        else os.path.join(CONFIG_ROOT, "configs", "*", stem + ".yaml")
    hits = sorted(glob.glob(pattern))
    return hits[0] if hits else None

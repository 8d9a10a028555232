"""The parameter/FLOPs table and the README model zoo, built from the registry and the counters
of ``ppcls.analysis.flops`` (``tools/paras_flops.py``, ``tools/gen_model_zoo.py``)."""
import difflib
import glob
import os

from ..utils.paths import CONFIG_ROOT, REPO_ROOT
from .flops import COUNTERS, DEFAULT_THOP, THOP_BY_FAMILY, count_model, paper_format


# ----------------------------------------------------------------------------- tables
def model_family(name):
    """The registered family, else the folder of its config (configs/<Family>/<name>.yaml) or
    of a config of a model defined in the same module, else that module's name."""
    from ..modeling import get_model_factory, model_info
    from ..modeling import registry
    family = model_info(name).get("family")
    if family:
        return family
    module = get_model_factory(name).__module__
    siblings = [name] + [n for n, f in registry._MODELS.items() if f.__module__ == module]
    for n in siblings:
        cfg = find_config(n)
        if cfg:
            return os.path.basename(os.path.dirname(cfg))
    return module.rsplit(".", 1)[-1]


def resolve_counter(counter, name=None):
    """``thop`` -> the thop build the model's paper used (``THOP_BY_FAMILY``)."""
    if counter != "thop":
        if counter not in COUNTERS:
            raise ValueError(f"counter must be one of thop, {', '.join(COUNTERS)}, not {counter!r}")
        return counter
    family = model_family(name) if name else None
    return THOP_BY_FAMILY.get(family, DEFAULT_THOP)


def find_config(name, root=CONFIG_ROOT):
    """configs/<dir>/<name>.yaml relative to ``root`` (first match), else None. ``root``: the
    checkout, or the installed package that ships the recipes."""
    hits = sorted(glob.glob(os.path.join(root, "configs", "*", f"{name}.yaml")))
    return os.path.relpath(hits[0], root).replace(os.sep, "/") if hits else None


def registered_in_order(pattern="*"):
    """Registered names grouped by family (families in order of first registration), each
    family in registration order."""
    from ..modeling import list_models
    from ..modeling import registry
    wanted = set(list_models(pattern))
    names = [n for n in registry._MODELS if n in wanted]
    families = {}
    for n in names:
        families.setdefault(model_family(n), []).append(n)
    return [n for group in families.values() for n in group]


def count_rows(names, counter="macs", units="decimal", input_size=224, class_dim=1000,
               counts_fn=None):
    """Rows (dicts) of the parameter/FLOPs table, yielded one model at a time;
    ``counts_fn(name) -> Counts`` defaults to building each model (``count_model``)."""
    if units not in ("decimal", "binary"):
        raise ValueError(f"units must be 'decimal' or 'binary', not {units!r}")
    counts_fn = counts_fn or (lambda n: count_model(n, input_size, class_dim))
    for name in names:
        c = counts_fn(name)
        used = resolve_counter(counter, name)
        params, flops = c.value(used)
        if units == "binary":
            p, f = paper_format(params), paper_format(flops)
        else:
            p, f = f"{params / 1e6:.2f}M", f"{flops / 1e9:.3f}G"
        yield {"model": name, "family": model_family(name), "counter": used,
               "params": params, "flops": flops, "params_str": p, "flops_str": f,
               "zero_types": c.thop_zero_types.get(used, [])}


TABLE_COLUMNS = (("model", "model", 26), ("family", "family", 14), ("counter", "counter", 10),
                 ("params", "params", 12), ("flops", "FLOPs", 16), ("params_str", "params", 9),
                 ("flops_str", "FLOPs", 9))


def format_row(row=None):
    """One fixed-width line of the table (the header when ``row`` is None)."""
    cells = []
    for key, title, width in TABLE_COLUMNS:
        if row is None:
            text = title
        elif key in ("params", "flops"):
            text = f"{int(row[key]):,}"
        else:
            text = str(row[key])
        cells.append(text.rjust(width) if key not in ("model", "family", "counter")
                     else text.ljust(width))
    return "  ".join(cells).rstrip()


# ----------------------------------------------------------------------------- model zoo
ZOO_START = "<!-- model-zoo:start -->"
ZOO_END = "<!-- model-zoo:end -->"
ZOO_TARGETS = ("README.md", "README_cn.md")
ZOO_DOC = "docs/model_zoo.md"
ZOO_NOTES = (
    "DLA: our port does not build the official code's dead projections (1x1 conv + BN whose "
    "output is discarded), so its parameters and GMACs are those of the live network "
    "(ARCHITECTURES.md lists both).",
    "",
)


def zoo_rows(names=None, counts_fn=None, root=REPO_ROOT):
    """One dict per registered model: family, model, params, macs, paper top-1, config
    (``counts_fn(name) -> Counts`` defaults to ``count_model``)."""
    from ..modeling import model_info
    names = registered_in_order() if names is None else names
    counts_fn = counts_fn or count_model
    rows = []
    for name in names:
        c = counts_fn(name)
        rows.append({"family": model_family(name), "model": name, "params": c.params,
                     "macs": c.macs, "paper_top1": model_info(name).get("paper_top1"),
                     "config": find_config(name, root)})
    return rows


def render_zoo_block(rows, link_prefix=""):
    """The markdown block between the markers (markers included); config links are relative
    to the file the block goes into (``link_prefix`` '../' for docs/)."""
    lines = [ZOO_START,
             "<!-- generated by `python tools/gen_model_zoo.py --write` from the model registry; "
             "do not edit by hand -->",
             "| Family | Model | Params (M) | GMACs | Paper top-1 (%) | Config |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        top1 = "—" if r["paper_top1"] is None else f"{float(r['paper_top1']):.2f}"
        cfg = (f"[{os.path.basename(r['config'])}]({link_prefix}{r['config']})"
               if r["config"] else "—")
        lines.append(f"| {r['family']} | {r['model']} | {r['params'] / 1e6:.2f} | "
                     f"{r['macs'] / 1e9:.3f} | {top1} | {cfg} |")
    lines.append("")
    lines.extend(ZOO_NOTES)
    lines.append("Params: trainable parameters; GMACs: multiply-adds of convolutions, transposed "
                 "convolutions (on their input grid) and linear layers for one 224x224 image, "
                 "what these papers call FLOPs. ECA-Net and RLA-Net print thop counts in binary "
                 "units: `python tools/paras_flops.py -a MODEL --counter thop --units binary`.")
    lines.append(ZOO_END)
    return "\n".join(lines)


def render_zoo_doc(rows):
    return ("# Model zoo\n\n"
            "Every registered architecture, generated from the code by `tools/gen_model_zoo.py` "
            "(counts from `ppcls/analysis/flops.py`, paper top-1 from the registry).\n\n"
            + render_zoo_block(rows, link_prefix="../") + "\n")


def extract_block(text):
    """The block between the markers (markers included), or None when they are missing."""
    i = text.find(ZOO_START)
    j = text.find(ZOO_END, i + 1) if i >= 0 else -1
    if i < 0 or j < 0:
        return None
    return text[i:j + len(ZOO_END)]


def replace_block(text, block):
    old = extract_block(text)
    if old is None:
        raise ValueError(f"no {ZOO_START} ... {ZOO_END} markers")
    return text.replace(old, block, 1)


def zoo_updates(rows, root=REPO_ROOT):
    """{relative path: (current text or None, expected text)} for every file the generator
    owns: docs/model_zoo.md always, README.md / README_cn.md when they exist with markers
    (a README.md without markers maps to (text, None))."""
    out = {ZOO_DOC: (_read(os.path.join(root, ZOO_DOC)), render_zoo_doc(rows))}
    block = render_zoo_block(rows)
    for rel in ZOO_TARGETS:
        text = _read(os.path.join(root, rel))
        if text is None:
            continue
        if extract_block(text) is None:
            if rel == "README.md":
                out[rel] = (text, None)
            continue
        out[rel] = (text, replace_block(text, block))
    return out


def unified_diff(old, new, path):
    return "".join(difflib.unified_diff((old or "").splitlines(True), new.splitlines(True),
                                        f"{path} (on disk)", f"{path} (generated)"))


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()

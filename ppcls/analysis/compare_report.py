"""The summary of a comparison: per variant the mean, standard deviation and range over seeds,
each variant's difference to the first with a 95% Welch t interval, the per-epoch mean curves
with a band of +-1 standard deviation. Reads the ``done.json`` files of the runs."""
import csv
import math
import os

from .compare import read_json
from .compare_stats import describe, welch_interval
from .log_parse import pyplot, style_axes

# (key in done.json metrics, label, scale, higher is better)
METRICS = (
    ("best_top1", "best top-1 (%)", 100.0, True),
    ("final_top1", "final top-1 (%)", 100.0, True),
    ("best_topk", "best top-{k} (%)", 100.0, True),
    ("final_topk", "final top-{k} (%)", 100.0, True),
    ("best_loss", "best valid loss", 1.0, False),
    ("final_loss", "final valid loss", 1.0, False),
    ("final_train_loss", "final train loss", 1.0, False),
    ("ips", "train images/s", 1.0, True),
    ("seconds", "wall time (s)", 1.0, False),
)
# what the differences table reports (images/s and time depend on the machine's load)
DIFF_METRICS = ("best_top1", "final_top1", "best_topk", "final_topk", "final_loss")


def collect(plan):
    """{variant name: [done.json records, in seed order]} of the finished runs of ``plan``."""
    found = {}
    for run in plan:
        found.setdefault(run.variant.name, [])
        done = read_json(run.path("done.json"))
        if done is not None:
            found[run.variant.name].append(done)
    return found


def _values(records, key):
    scale = next(s for k, _, s, _ in METRICS if k == key)
    out = []
    for r in records:
        v = r["seconds"] if key == "seconds" else r["metrics"].get(key)
        if v is not None:
            out.append(v * scale)
    return out


def _topk_name(records_by_variant):
    for records in records_by_variant.values():
        for r in records:
            if r.get("topk"):
                return r["topk"][3:]
    return "k"


def summarize(variants, facts, records_by_variant):
    """One row per variant: runs, seeds, params, GMACs and ``describe`` of every metric."""
    rows = []
    for v in variants:
        records = records_by_variant.get(v.name, [])
        f = facts[v.name]
        rows.append({"variant": v.name, "runs": len(records),
                     "seeds": [r["seed"] for r in records],
                     "params": f["params"], "gmacs": f["gmacs"],
                     "stats": {k: describe(_values(records, k)) for k, *_ in METRICS}})
    return rows


def differences(variants, records_by_variant, confidence=0.95):
    """Each variant against the first: rows (variant, metric, Difference, higher_is_better)."""
    if not variants:
        return []
    base = records_by_variant.get(variants[0].name, [])
    rows = []
    for v in variants[1:]:
        records = records_by_variant.get(v.name, [])
        for key, _, _, higher in METRICS:
            if key in DIFF_METRICS:
                d = welch_interval(_values(records, key), _values(base, key), confidence)
                rows.append((v.name, key, d, higher))
    return rows


def _num(x, digits):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def write_csv(path, rows, diffs, topk):
    """summary.csv (one row per variant) and differences.csv next to it."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["variant", "runs", "seeds", "params", "gmacs"]
        for key, *_ in METRICS:
            head += [f"{key}_{s}" for s in ("mean", "std", "min", "max")]
        w.writerow(head)
        for r in rows:
            line = [r["variant"], r["runs"], " ".join(map(str, r["seeds"])), r["params"],
                    _num(r["gmacs"], 6)]
            for key, *_ in METRICS:
                d = r["stats"][key]
                line += [_num(d.mean, 6), _num(d.std, 6), _num(d.min, 6), _num(d.max, 6)]
            w.writerow(line)
    diff_path = os.path.join(os.path.dirname(path), "differences.csv")
    with open(diff_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "baseline", "metric", "difference", "ci_low", "ci_high",
                    "confidence", "df", "runs", "baseline_runs", "verdict"])
        base = rows[0]["variant"] if rows else ""
        for name, key, d, higher in diffs:
            w.writerow([name, base, key, _num(d.diff, 6), _num(d.low, 6), _num(d.high, 6),
                        d.confidence, _num(d.df, 3), d.n_a, d.n_b, d.verdict(higher)])
    return path, diff_path


def _cell(d, digits):
    if d.n == 0:
        return "-"
    if d.n == 1:
        return f"{d.mean:.{digits}f} (1 run)"
    return f"{d.mean:.{digits}f} ± {d.std:.{digits}f} [{d.min:.{digits}f}, {d.max:.{digits}f}]"


def markdown(rows, diffs, topk, title="", note=""):
    """The summary and the differences as Markdown tables."""
    shown = [m for m in METRICS if m[0] != "best_loss"]
    label = {k: lab.format(k=topk) for k, lab, *_ in METRICS}
    digits = {k: (2 if s == 100.0 or k in ("ips", "seconds") else 4) for k, _, s, _ in METRICS}
    out = [f"# {title}", ""] if title else []
    if note:
        out += [note, ""]
    out += ["| variant | runs | params (M) | GMACs | " + " | ".join(label[k] for k, *_ in shown) + " |",
            "|---|---:|---:|---:|" + "---|" * len(shown)]
    for r in rows:
        out.append(f"| {r['variant']} | {r['runs']} | {r['params'] / 1e6:.2f} | "
                   f"{_num(r['gmacs'], 3) or '-'} | "
                   + " | ".join(_cell(r["stats"][k], digits[k]) for k, *_ in shown) + " |")
    if diffs:
        base = rows[0]["variant"]
        conf = int(round(diffs[0][2].confidence * 100))
        out += ["", f"Difference to `{base}` (variant minus {base}; percentage points for "
                f"accuracies), {conf}% Welch t interval; \"better\"/\"worse\" only when the "
                f"interval excludes zero:", "",
                "| variant | metric | difference | %d%% interval | df | verdict |" % conf,
                "|---|---|---:|---|---:|---|"]
        for name, key, d, higher in diffs:
            dg = digits[key]
            diff = "-" if math.isnan(d.diff) else f"{d.diff:+.{dg}f}"
            interval = "-" if math.isnan(d.low) else f"[{d.low:+.{dg}f}, {d.high:+.{dg}f}]"
            out.append(f"| {name} | {label[key]} | {diff} | {interval} | "
                       f"{_num(d.df, 1) or '-'} | {d.verdict(higher)} |")
    return "\n".join(out) + "\n"


def mean_curves(records, name, scale=1.0):
    """(epochs, mean, std, n) over the runs that logged each epoch of curve ``name``."""
    by_epoch = {}
    for r in records:
        for e, v in r["curves"].get(name, []):
            by_epoch.setdefault(int(e), []).append(v * scale)
    epochs = sorted(by_epoch)
    stats = [describe(by_epoch[e]) for e in epochs]
    return epochs, [d.mean for d in stats], [d.std for d in stats], [d.n for d in stats]


def plot_curves(variants, records_by_variant, out_dir):
    """compare_top1.png (valid top-1 %) and compare_train_loss.png: per variant the mean over
    its runs per epoch, with a band of +-1 standard deviation (none for a single run)."""
    plt, colors = pyplot()
    paths = []
    for curve, scale, title, ylabel, fname in (
            ("valid_top1", 100.0, "Validation top-1", "top-1 (%)", "compare_top1.png"),
            ("train_loss", 1.0, "Training loss", "loss", "compare_train_loss.png")):
        fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
        for i, v in enumerate(variants):
            records = records_by_variant.get(v.name, [])
            epochs, mean, std, n = mean_curves(records, curve, scale)
            if not epochs:
                continue
            c = colors[i % len(colors)]
            ax.plot(epochs, mean, "-o", color=c, ms=3, label=f"{v.name} (n={max(n)})")
            lo = [m - s if not math.isnan(s) else m for m, s in zip(mean, std)]
            hi = [m + s if not math.isnan(s) else m for m, s in zip(mean, std)]
            ax.fill_between(epochs, lo, hi, color=c, alpha=0.2, linewidth=0)
        style_axes(ax, f"{title}: mean over seeds, band ±1 s.d.", ylabel,
                   empty_text="no finished run")
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(out, variants, facts, plan, title="", note=""):
    """Write summary.csv, differences.csv, summary.md and the two plots into ``out``; returns
    (markdown text, written paths)."""
    records = collect(plan)
    rows = summarize(variants, facts, records)
    diffs = differences(variants, records)
    topk = _topk_name(records)
    paths = list(write_csv(os.path.join(out, "summary.csv"), rows, diffs, topk))
    text = markdown(rows, diffs, topk, title, note)
    md = os.path.join(out, "summary.md")
    with open(md, "w") as f:
        f.write(text)
    paths.append(md)
    paths += plot_curves(variants, records, out)
    return text, paths

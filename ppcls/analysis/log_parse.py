"""Read training logs (PaddleClas release/2.0 format) into per-epoch curves, and plot them.

Lines understood (anything else in the file is ignored; a timestamp / level prefix, colour
codes and extra ``key: value`` fields are fine)::

    2021-04-09 11:43:34 INFO: epoch:0  , train step:10  , loss: 6.96350, lr: 0.000032, ...
    2021-04-09 12:40:02 INFO: END epoch:0   train loss: 6.12345, top1: 0.01000, lr: 0.000100, ...
    2021-04-15 11:15:47 INFO: END epoch:0   valid top1: 0.77666, top5: 0.94004, loss: 1.84472, ...

Per epoch: train loss = mean of that epoch's step losses (the ``END ... train`` loss when the
epoch logged no step), learning rate = the lr of its first logged step (the lr the epoch started
with; else the ``END ... train`` lr), validation top-1 / top-k / loss = the epoch's
``END ... valid`` line (the last one if a resumed run logged it twice).

Where the logs are: a log file; a folder of ``paddle.distributed.launch`` logs (``workerlog.N``:
the curves come from ``workerlog.0``); a folder of log files (one run per file); or a folder of
run folders (one run per sub-folder, side by side). The per-epoch ``metrics.csv`` a training run
writes (``model_save_dir/<ARCH>/metrics.csv``) is read as well, the file or its folder: the
same curves, one row per epoch, even when the logs of a resumed run are scattered.
"""
import csv
import glob
import os
import re
from dataclasses import dataclass, field

from ..utils.errors import UserError

EXAMPLE_LINES = (
    "2021-04-09 11:43:34 INFO: epoch:0  , train step:10  , loss: 6.96350, lr: 0.000032, "
    "batch_cost: 0.40174 s, reader_cost: 0.00584 s, ips: 159.30689 images/sec.",
    "2021-04-15 11:15:47 INFO: END epoch:0   valid top1: 0.77666, top5: 0.94004, loss: 1.84472, "
    " batch_cost: 0.46643 s, reader_cost: 0.26428 s, batch_cost_sum: 177.71115 s, ips: "
    "171.51428 images/sec.",
)
LOG_SUFFIXES = (".log", ".txt", ".out")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_EPOCH = re.compile(r"(?P<end>\bEND\s+)?\bepoch\s*:\s*(?P<epoch>\d+)\s*,?\s*(?P<rest>.*)$",
                    re.IGNORECASE)
_FIELD = re.compile(r"(?<![\w.])(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*:\s*(?P<value>" + _NUMBER + r")",
                    re.IGNORECASE)
_MODE = re.compile(r"^\s*(?P<mode>train|valid|eval|val|test)\b", re.IGNORECASE)


class LogParseError(UserError, ValueError):
    """A log with nothing we can read, or a place with no log."""


@dataclass
class RunLog:
    """Everything parsed from one run's log."""
    label: str
    path: str
    steps: dict = field(default_factory=dict)        # epoch -> [fields of each train step]
    train_end: dict = field(default_factory=dict)    # epoch -> fields of "END epoch:N train"
    valid_end: dict = field(default_factory=dict)    # epoch -> fields of "END epoch:N valid"
    lines: int = 0                                   # lines understood

    def train_loss(self):
        """(epochs, loss per epoch): mean of the step losses, else the END train loss."""
        out = {}
        for e, steps in self.steps.items():
            losses = [s["loss"] for s in steps if "loss" in s]
            if losses:
                out[e] = sum(losses) / len(losses)
        for e, f in self.train_end.items():
            if e not in out and "loss" in f:
                out[e] = f["loss"]
        return _series(out)

    def learning_rate(self):
        """(epochs, lr per epoch): the lr of the epoch's first logged train step, i.e. the lr it
        started with (the END train line holds the lr after the epoch's last scheduler step,
        the next epoch's), else that END lr."""
        out = {}
        for e, f in self.train_end.items():
            if "lr" in f:
                out[e] = f["lr"]
        for e, steps in self.steps.items():
            lrs = [s["lr"] for s in sorted(steps, key=lambda s: s["step"]) if "lr" in s]
            if lrs:
                out[e] = lrs[0]
        return _series(out)

    def valid(self, key):
        """(epochs, values) of ``key`` ('top1', 'top5', 'loss') from the END valid lines."""
        return _series({e: f[key] for e, f in self.valid_end.items() if key in f})

    def topk_key(self):
        """The validation top-k other than top-1 that the log reports ('top5'), or None."""
        keys = sorted({k for f in self.valid_end.values() for k in f
                       if re.fullmatch(r"top\d+", k) and k != "top1"},
                      key=lambda k: int(k[3:]))
        return keys[0] if keys else None


def _series(mapping):
    epochs = sorted(mapping)
    return epochs, [mapping[e] for e in epochs]


def parse_line(line):
    """(kind, epoch, fields) with kind 'step' | 'train_end' | 'valid_end', or None."""
    line = _ANSI.sub("", line)
    m = _EPOCH.search(line)
    if not m:
        return None
    epoch, rest, end = int(m.group("epoch")), m.group("rest"), bool(m.group("end"))
    fields = {f.group("key").lower(): float(f.group("value")) for f in _FIELD.finditer(rest)}
    if end:
        mode = _MODE.match(rest)
        if not mode:
            return None
        kind = "train_end" if mode.group("mode").lower() == "train" else "valid_end"
        return (kind, epoch, fields) if fields else None
    step = re.search(r"\btrain\s+step\s*:\s*(\d+)", rest, re.IGNORECASE)
    if step and "loss" in fields:
        fields["step"] = float(step.group(1))
        return "step", epoch, fields
    return None


def parse_lines(lines, path="<lines>", label=None):
    run = RunLog(label=label or _label_of(path), path=path)
    for line in lines:
        parsed = parse_line(line)
        if parsed is None:
            continue
        kind, epoch, fields = parsed
        run.lines += 1
        if kind == "step":
            run.steps.setdefault(epoch, []).append(fields)
        elif kind == "train_end":
            run.train_end[epoch] = fields
        else:
            run.valid_end[epoch] = fields
    return run


def parse_log(path, label=None):
    """Parse one log file; ``LogParseError`` naming the file when no line is understood."""
    with open(path, encoding="utf-8", errors="replace") as f:
        run = parse_lines(f, path, label)
    if run.lines == 0:
        raise LogParseError(
            f"{path}: no training or validation line found. Expected lines like\n  "
            + "\n  ".join(EXAMPLE_LINES))
    return run


METRICS_CSV = "metrics.csv"


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def parse_metrics_csv(path, label=None):
    """A run from a training run's metrics.csv (ppcls.engine.records): per epoch the train loss,
    the lr the epoch started with, validation top-1 / top-k / loss."""
    run = RunLog(label=label or _label_of(path), path=path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "epoch" not in (reader.fieldnames or []):
            raise LogParseError(f"{path}: not a metrics.csv (no 'epoch' column; expected the "
                                f"header epoch,lr,train_loss,...,valid_top1,...)")
        for row in reader:
            epoch = _float(row.get("epoch"))
            if epoch is None:
                continue
            train = {k: _float(row.get(c)) for k, c in (("loss", "train_loss"),
                                                        ("top1", "train_top1"), ("lr", "lr"))}
            valid = {c[len("valid_"):]: _float(v) for c, v in row.items()
                     if c and c.startswith("valid_") and not c.startswith("valid_ema")}
            train = {k: v for k, v in train.items() if v is not None}
            valid = {k: v for k, v in valid.items() if v is not None}
            if train:
                run.train_end[int(epoch)] = train
            if valid:
                run.valid_end[int(epoch)] = valid
            run.lines += bool(train or valid)
    if run.lines == 0:
        raise LogParseError(f"{path}: no epoch row with values")
    return run


def _label_of(path):
    path = os.path.normpath(path)
    base = os.path.basename(path)
    if base == METRICS_CSV:                    # model_save_dir/<ARCH>/metrics.csv: the ARCH
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or base
    if re.fullmatch(r"workerlog\.\d+", base):
        return os.path.basename(os.path.dirname(path)) or base
    return os.path.splitext(base)[0] if os.path.isfile(path) else base


def _worker_logs(folder):
    logs = glob.glob(os.path.join(folder, "workerlog.*"))
    logs = [p for p in logs if re.fullmatch(r"workerlog\.\d+", os.path.basename(p))]
    return sorted(logs, key=lambda p: int(p.rsplit(".", 1)[1]))


def _log_files(folder):
    return sorted(p for p in glob.glob(os.path.join(folder, "*"))
                  if os.path.isfile(p) and (p.endswith(LOG_SUFFIXES)
                                            or os.path.basename(p) in ("log", "train_log")))


def _folder_label(folder):
    """A run's name: its folder, or the folder above a launch ``log`` folder."""
    folder = os.path.normpath(os.path.abspath(folder))
    name = os.path.basename(folder)
    parent = os.path.basename(os.path.dirname(folder))
    return parent if name == "log" and parent else name


def _runs_in_folder(folder):
    """Runs of one folder: its workerlog.0; else its log files (one run, named after the
    folder, when there is one file); else <folder>/log/workerlog.0."""
    workers = _worker_logs(folder)
    if workers:
        return [(_folder_label(folder), workers[0])]
    if os.path.isfile(os.path.join(folder, METRICS_CSV)):
        return [(_folder_label(folder), os.path.join(folder, METRICS_CSV))]
    logs = _log_files(folder)
    if len(logs) == 1:
        return [(_folder_label(folder), logs[0])]
    if logs:
        return [(_label_of(p), p) for p in logs]
    log_dir = os.path.join(folder, "log")
    if os.path.isdir(log_dir) and _worker_logs(log_dir):
        return [(_folder_label(folder), _worker_logs(log_dir)[0])]
    return []


def find_runs(path):
    """[(label, log file)] for a log file, a launch log folder (workerlog.0), a folder of log
    files, or a folder of run folders (one run per sub-folder)."""
    path = os.path.normpath(path)
    if os.path.isfile(path):
        return [(_label_of(path), path)]
    if not os.path.isdir(path):
        raise LogParseError(f"{path}: no such log file or folder")
    runs = _runs_in_folder(path)
    if runs:
        return runs
    for sub in sorted(d for d in glob.glob(os.path.join(path, "*")) if os.path.isdir(d)):
        runs.extend(_runs_in_folder(sub))
    return runs


def load_runs(paths):
    """Parse every run under ``paths`` (each a file or folder); labels made unique. A run
    whose log has no understood line raises ``LogParseError`` naming it."""
    found = []
    for path in paths:
        runs = find_runs(path)
        if not runs:
            raise LogParseError(
                f"{path}: no log found (looked for workerlog.N, *{', *'.join(LOG_SUFFIXES)} "
                f"files, {METRICS_CSV}, and run folders holding them)")
        found.extend(runs)
    seen, out = {}, []
    for label, log in found:
        seen[label] = seen.get(label, 0) + 1
        label = label if seen[label] == 1 else f"{label} ({seen[label]})"
        out.append(parse_metrics_csv(log, label) if log.endswith(".csv") else parse_log(log, label))
    return out


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), and the colour cycle."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt, plt.rcParams["axes.prop_cycle"].by_key()["color"]


def style_axes(ax, title, ylabel, xlabel="epoch", empty_text=None):
    """The look of every curve plot: integer epochs, light grid, a legend when there are
    labelled lines, else ``empty_text`` in the middle."""
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    elif empty_text:
        ax.text(0.5, 0.5, empty_text, ha="center", va="center", transform=ax.transAxes)


def plot_runs(runs, out_dir):
    """Write acc_plot.png (validation top-1 and top-k per epoch) and loss_plot.png (train
    and validation loss per epoch, learning rate per epoch) into ``out_dir``; return both
    paths. Uses matplotlib's Agg backend (no display needed)."""
    plt, colors = pyplot()
    os.makedirs(out_dir, exist_ok=True)

    def name(run, what):               # "top-1" for one run, "runA top-1" side by side
        return f"{run.label} {what}" if len(runs) > 1 else what

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for i, run in enumerate(runs):
        c = colors[i % len(colors)]
        ep, top1 = run.valid("top1")
        if ep:
            ax.plot(ep, [100 * v for v in top1], "-o", color=c, ms=3, label=name(run, "top-1"))
        k = run.topk_key()
        if k:
            ep, topk = run.valid(k)
            ax.plot(ep, [100 * v for v in topk], "--s", color=c, ms=3,
                    label=name(run, f"top-{k[3:]}"))
    style_axes(ax, "Validation accuracy", "accuracy (%)",
               empty_text="no validation line in the logs")
    fig.tight_layout()
    acc_path = os.path.join(out_dir, "acc_plot.png")
    fig.savefig(acc_path)
    plt.close(fig)

    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 7), dpi=100, sharex=True,
                                         gridspec_kw={"height_ratios": [2, 1]})
    for i, run in enumerate(runs):
        c = colors[i % len(colors)]
        ep, loss = run.train_loss()
        if ep:
            ax_loss.plot(ep, loss, "-o", color=c, ms=3, label=name(run, "train"))
        ep, vloss = run.valid("loss")
        if ep:
            ax_loss.plot(ep, vloss, "--s", color=c, ms=3, label=name(run, "valid"))
        ep, lr = run.learning_rate()
        if ep:
            ax_lr.plot(ep, lr, "-o", color=c, ms=2, label=run.label if len(runs) > 1 else None)
    style_axes(ax_loss, "Loss", "loss", xlabel=None)
    style_axes(ax_lr, "Learning rate (at the start of each epoch)", "lr")
    fig.tight_layout()
    loss_path = os.path.join(out_dir, "loss_plot.png")
    fig.savefig(loss_path)
    plt.close(fig)
    return acc_path, loss_path


def summarize(runs):
    """One line per run: epochs seen, best validation top-1 and its epoch, last train loss."""
    lines = []
    for run in runs:
        ep, top1 = run.valid("top1")
        tep, loss = run.train_loss()
        epochs = sorted(set(ep) | set(tep))
        best = (f"best top-1 {100 * max(top1):.2f}% at epoch {ep[top1.index(max(top1))]}"
                if top1 else "no validation")
        last = f"last train loss {loss[-1]:.4f}" if loss else "no train loss"
        lines.append(f"{run.label}: {len(epochs)} epoch(s), {best}, {last} ({run.path})")
    return "\n".join(lines)

"""One run of a comparison: its log (several attempts when it was resumed) read into per-epoch
curves and the figures the summary needs."""
import os
import re
import shutil
import statistics

from .log_parse import RunLog, parse_lines

ATTEMPT_MARK = "compare: attempt"


def parse_run_log(path):
    """A run's ``train.log`` as one RunLog. Each attempt (after a ``compare: attempt`` line) is
    parsed on its own and a later attempt replaces the epochs it logged: a resumed run repeats
    the epoch it was killed in, and that epoch's partial steps must not be averaged in."""
    attempts, cur = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if ATTEMPT_MARK in line and cur:
                attempts.append(cur)
                cur = []
            cur.append(line)
    attempts.append(cur)
    merged = RunLog(label=os.path.basename(os.path.dirname(os.path.abspath(path))), path=path)
    for lines in attempts:
        part = parse_lines(lines, path)
        merged.steps.update(part.steps)
        merged.train_end.update(part.train_end)
        merged.valid_end.update(part.valid_end)
        merged.lines += part.lines
    return merged


def _curve(mapping, key):
    return [[e, mapping[e][key]] for e in sorted(mapping) if key in mapping[e]]


def run_result(log, epochs, validate=True):
    """``{"metrics": ..., "curves": ...}`` of a finished run, or None when the log lacks the
    last epoch (``END epoch:<epochs-1>`` train line, and its valid line when validating).

    metrics: best/final valid top-1 and top-k (max over epochs / last epoch), best (lowest) and
    final valid loss, final train loss, the best top-1's epoch, and train images/s (median of
    the epochs' ``ips``). curves: [epoch, value] lists per quantity."""
    last = epochs - 1
    if last not in log.train_end or (validate and last not in log.valid_end):
        return None
    k = log.topk_key()
    train_loss = {}
    for e in sorted(set(log.steps) | set(log.train_end)):
        if "loss" in log.train_end.get(e, {}):          # the epoch's exact mean
            train_loss[e] = log.train_end[e]["loss"]
        else:
            losses = [s["loss"] for s in log.steps.get(e, []) if "loss" in s]
            if losses:
                train_loss[e] = sum(losses) / len(losses)
    curves = {"valid_top1": _curve(log.valid_end, "top1"),
              "valid_topk": _curve(log.valid_end, k) if k else [],
              "valid_loss": _curve(log.valid_end, "loss"),
              "train_loss": [[e, v] for e, v in sorted(train_loss.items())],
              "train_ips": _curve(log.train_end, "ips")}

    def best(name, pick=max):
        return pick(v for _, v in curves[name]) if curves[name] else None

    def final(name):
        return curves[name][-1][1] if curves[name] else None

    top1 = curves["valid_top1"]
    metrics = {
        "best_top1": best("valid_top1"), "final_top1": final("valid_top1"),
        "best_top1_epoch": max(top1, key=lambda p: p[1])[0] if top1 else None,
        "best_topk": best("valid_topk"), "final_topk": final("valid_topk"),
        "best_loss": best("valid_loss", min), "final_loss": final("valid_loss"),
        "final_train_loss": final("train_loss"),
        "ips": statistics.median(v for _, v in curves["train_ips"]) if curves["train_ips"] else None,
        "epochs": epochs}
    return {"topk": k, "metrics": metrics, "curves": curves}


def tail(path, lines=8):
    """The last lines of a log, indented (what a failed run said last)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            end = f.readlines()[-lines:]
    except OSError:
        return ""
    return "".join("    " + line for line in end).rstrip()


def remove_epoch_checkpoints(arch_dir):
    """Delete ``<epoch>/`` checkpoints of a finished run (its log holds what the comparison
    needs; ``best_model/`` stays)."""
    if not os.path.isdir(arch_dir):
        return
    for name in os.listdir(arch_dir):
        if re.fullmatch(r"\d+", name):
            shutil.rmtree(os.path.join(arch_dir, name), ignore_errors=True)

"""Accuracy: top-k hits per sample, top-1 per class."""
import numpy as np


def topk_correct(logits, labels, ks=(1, 5)):
    """Per-sample 0/1 hits for each k: {k: ndarray[N]} (numpy in, numpy out)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    kmax = min(max(ks), logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :kmax]
    hit = top == labels[:, None]
    return {k: hit[:, :min(k, kmax)].any(axis=1).astype(np.float64) for k in ks}


def per_class_top1(labels, preds):
    """{class: (top-1, number of samples)} over the classes present in ``labels``."""
    labels, preds = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
    return {int(c): (float((preds[labels == c] == c).mean()), int((labels == c).sum()))
            for c in np.unique(labels)}


def format_per_class(per_class, names, max_shown=20):
    """One log line: ``valid per-class top1: 0 cat 0.950 (n=40), ...`` (the lowest
    ``max_shown`` when there are more classes)."""
    items = sorted(per_class.items())
    title = "valid per-class top1"
    if len(items) > max_shown:
        items = sorted(items, key=lambda kv: kv[1][0])[:max_shown]
        title += f" (lowest {max_shown} of {len(per_class)})"
    return title + ": " + ", ".join(
        f"{c} {names.get(c, '?')} {acc:.3f} (n={n})" for c, (acc, n) in items)

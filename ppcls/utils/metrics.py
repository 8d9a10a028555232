"""Top-k accuracy."""
import numpy as np


def topk_correct(logits, labels, ks=(1, 5)):
    """Per-sample 0/1 hits for each k: {k: ndarray[N]} (numpy in, numpy out)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    kmax = min(max(ks), logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :kmax]
    hit = top == labels[:, None]
    return {k: hit[:, :min(k, kmax)].any(axis=1).astype(np.float64) for k in ks}

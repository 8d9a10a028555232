"""Cross-entropy with label smoothing, and its mixup/cutmix combination."""
import paddle
import paddle.nn.functional as F


def cross_entropy(logits, labels, epsilon=0.0, reduction="mean"):
    """CE against ``(1 - eps) * onehot + eps / K`` (``epsilon <= 0``: plain CE)."""
    log_p = F.log_softmax(logits.astype("float32"), axis=-1)
    nll = -paddle.take_along_axis(log_p, labels.reshape([-1, 1]).astype("int64"), axis=1).squeeze(1)
    if epsilon > 0:
        loss = (1.0 - epsilon) * nll - epsilon * log_p.mean(axis=-1)
    else:
        loss = nll
    return loss.mean() if reduction == "mean" else loss


def mix_cross_entropy(logits, labels_a, labels_b, lam, epsilon=0.0):
    return lam * cross_entropy(logits, labels_a, epsilon) + \
        (1.0 - lam) * cross_entropy(logits, labels_b, epsilon)

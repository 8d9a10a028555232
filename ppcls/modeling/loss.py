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


class LabelLoss:
    """The training loss of a plain recipe: ``(loss, logits) = criterion(model output, labels,
    mix)``, ``mix`` = (labels_a, labels_b, lam) after Mixup/Cutmix, else None. Logits are
    cast to float32 first (under AMP the loss is computed in float32)."""

    def __init__(self, epsilon=0.0):
        self.epsilon = max(0.0, float(epsilon))

    def label_loss(self, logits, labels, mix=None):
        if mix is not None:
            return mix_cross_entropy(logits, *mix, self.epsilon)
        return cross_entropy(logits, labels, self.epsilon)

    def __call__(self, logits, labels, mix=None):
        logits = logits.astype("float32") if logits.dtype != paddle.float32 else logits
        return self.label_loss(logits, labels, mix), logits

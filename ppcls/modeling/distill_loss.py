"""Distillation losses: PaddleClas release/2.0's SSLD loss and Hinton's temperature KL,
optionally mixed with the label loss.

SSLD (the default; release/2.0's ``JSDivLoss``, used by its tools/program.py when
``use_distillation`` is True). With ``s = softmax(student)``, ``t = softmax(teacher)``,
``eps = 1e-10`` and C classes, release/2.0 computes, element-wise over the [N, C] batch,

    cost = (t * log((t + eps) / (s + eps)) + s * log((s + eps) / (t + eps))) / 2 * C

and returns ``mean(cost)`` over all N * C elements. The factor C (``classes_num``) cancels the
mean over the class axis, so the loss is the batch mean of half the symmetric KL divergence,
``(KL(t || s) + KL(s || t)) / 2`` per sample (despite its name, not the Jensen-Shannon
divergence). Labels do not enter it: release/2.0 uses them for the top-1/top-k metrics only,
passes ``ls_epsilon`` to the loss but never reads it, and keeps this loss with Mixup/Cutmix too
(the teacher then scores the mixed images). Computed here in that order, so its value matches
release/2.0's to float32 rounding.

KL (Hinton et al. 2015): ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, summed
over the classes and averaged over the batch; the ``T^2`` keeps the gradient's scale
independent of T.

Either is mixed with the label loss (cross-entropy, with label smoothing ``ls_epsilon`` and
Mixup/Cutmix when the recipe has them) as ``(1 - label_weight) * distill + label_weight * label``.
"""
import paddle
import paddle.nn.functional as F

from .loss import LabelLoss

SSLD_EPS = 1.0e-10
FUNCTIONS = ("SSLD", "KL")


def ssld_loss(student_logits, teacher_logits):
    """release/2.0's SSLD loss (module docstring); logits [N, C] -> scalar."""
    s = F.softmax(student_logits.astype("float32"), axis=-1)
    t = F.softmax(teacher_logits.astype("float32"), axis=-1)
    classes = s.shape[-1]
    kl_ts = t * paddle.log((t + SSLD_EPS) / (s + SSLD_EPS)) * classes
    kl_st = s * paddle.log((s + SSLD_EPS) / (t + SSLD_EPS)) * classes
    return ((kl_ts + kl_st) / 2).mean()


def kl_loss(student_logits, teacher_logits, temperature=1.0):
    """Hinton's ``T^2 * KL(p_teacher^T || p_student^T)``, batch mean."""
    t_log = F.log_softmax(teacher_logits.astype("float32") / temperature, axis=-1)
    s_log = F.log_softmax(student_logits.astype("float32") / temperature, axis=-1)
    kl = (paddle.exp(t_log) * (t_log - s_log)).sum(axis=-1)
    return kl.mean() * (temperature * temperature)


class DistillationLoss(LabelLoss):
    """``(loss, student logits) = criterion((teacher logits, student logits), labels, mix)``;
    the student's logits are what the training metrics score."""

    def __init__(self, function="SSLD", temperature=1.0, label_weight=0.0, epsilon=0.0):
        super().__init__(epsilon)
        if function not in FUNCTIONS:
            raise ValueError(f"distillation loss function must be one of {FUNCTIONS}, got {function!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= label_weight < 1.0:
            raise ValueError(f"label_weight must be in [0, 1), got {label_weight}")
        self.function, self.temperature = function, float(temperature)
        self.label_weight = float(label_weight)

    def distill_loss(self, student_logits, teacher_logits):
        if self.function == "SSLD":
            return ssld_loss(student_logits, teacher_logits)
        return kl_loss(student_logits, teacher_logits, self.temperature)

    def __call__(self, outputs, labels, mix=None):
        if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
            raise TypeError("a distillation loss needs (teacher logits, student logits): is the "
                            "model a <Teacher>_distill_<Student> in train mode?")
        teacher, student = (o.astype("float32") if o.dtype != paddle.float32 else o
                            for o in outputs)
        loss = self.distill_loss(student, teacher)
        if self.label_weight > 0:
            loss = (1.0 - self.label_weight) * loss + \
                self.label_weight * self.label_loss(student, labels, mix)
        return loss, student

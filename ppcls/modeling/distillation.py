"""A teacher and a student in one layer, as PaddleClas release/2.0 names and saves them.

``<Teacher>_distill_<Student>`` (``DLA34_distill_DLA46_c``) pairs any two registered models.
The combined layer's state keys are ``teacher.*`` and ``student.*``, so a checkpoint holds both
and resumes like any other; ``student_state`` takes the student's part back out under its own
names (``ppcls_student.pdparams``), which loads into the plain student.

The teacher is frozen (``stop_gradient``: no gradient, so no optimizer state and no weight
decay) and always runs in eval mode, whatever ``train()`` was called on: release/2.0 freezes its
parameters but lets ``net.train()`` put its BatchNorm in train mode, so there the teacher
normalises with each batch's statistics and overwrites its running statistics with the
distillation data's (mixed images included). Here the teacher computes the function it was
trained and validated as, and its weights in every checkpoint stay those that were loaded. Its
forward runs under ``no_grad``: its outputs are targets, and building its backward graph would
only cost memory.

In train mode ``forward`` returns ``(teacher logits, student logits)``; in eval mode only the
student's logits, so validation, the static-graph evaluation and the EMA copy score the student
without knowing about the teacher (the teacher is not even run).
"""
import paddle
import paddle.nn as nn

from ..utils.errors import UserError
from .registry import get_model_factory, list_models

SEPARATOR = "_distill_"
TEACHER, STUDENT = "teacher", "student"


class DistillNameError(UserError, ValueError):
    """``ARCHITECTURE.name`` looks like ``<Teacher>_distill_<Student>`` but does not split into
    two registered models (or splits more than one way)."""


def is_distill_name(name):
    """True when ``name`` is meant as a pair (contains ``_distill_``)."""
    return isinstance(name, str) and SEPARATOR in name


def split_distill_name(name, known=None):
    """``'ReXNet_1_0_distill_DLA46_c'`` -> ``('ReXNet_1_0', 'DLA46_c')``.

    Every ``_distill_`` in the name is tried as the separator; exactly one must leave a
    registered model on both sides (``known``: the registered names, for tests). Model names
    contain underscores, so the split is by the registry, not by position."""
    from_registry = known is None
    known = set(list_models() if from_registry else known)
    cuts = []
    start = name.find(SEPARATOR)
    while start != -1:
        cuts.append((name[:start], name[start + len(SEPARATOR):]))
        start = name.find(SEPARATOR, start + 1)
    if not cuts:
        raise DistillNameError(f"{name!r} is not a <Teacher>{SEPARATOR}<Student> name")
    valid = [(t, s) for t, s in cuts if t in known and s in known]
    if len(valid) == 1:
        return valid[0]
    if len(valid) > 1:
        raise DistillNameError(
            f"{name!r} splits into a teacher and a student in {len(valid)} ways ("
            + "; ".join(f"teacher {t}, student {s}" for t, s in valid)
            + "); rename one of the registered models that contain '_distill_'")
    # name the parts of the most plausible split (the one with a known side, if any)
    teacher, student = max(cuts, key=lambda c: (c[0] in known) + (c[1] in known))
    problems = [f"the {role} {part!r} is not a registered model"
                + (f" ({_registry_hint(part)})" if from_registry and _registry_hint(part) else "")
                for role, part in ((TEACHER, teacher), (STUDENT, student)) if part not in known]
    raise DistillNameError(
        f"{name!r} is read as <Teacher>{SEPARATOR}<Student>, but " + " and ".join(problems)
        + "; pair two models of `python tools/paras_flops.py -a all` (release/2.0's "
        "ResNet50_vd, MobileNetV3 and ResNeXt101_32x16d_wsl are not in this suite)")


def _registry_hint(part):
    try:
        get_model_factory(part)
    except KeyError as e:
        hint = e.args[0].split("; ", 1)[-1]
        return hint if hint.startswith("did you mean") else ""
    return ""


class DistillationModel(nn.Layer):
    """``teacher`` (frozen, eval mode) and ``student`` side by side; see the module docstring."""

    def __init__(self, teacher, student):
        super().__init__()
        self.teacher = teacher
        self.student = student
        for p in self.teacher.parameters():
            p.stop_gradient = True
        self._teacher_eval()

    def _teacher_eval(self):
        # Set the flags directly: Layer.eval() would also switch the global dygraph tracer to
        # eval mode, which the student's dropout reads during training.
        if self.teacher.training:
            self.teacher.training = False
            for layer in self.teacher.sublayers():
                layer.training = False

    def train(self, mode=True):
        super().train(mode)
        self._teacher_eval()
        return self

    def forward(self, x):
        if not self.training:
            return self.student(x)
        self._teacher_eval()        # paddle.DataParallel.train() sets the flags of every sublayer
        with paddle.no_grad():
            teacher_logits = self.teacher(x)
        return teacher_logits, self.student(x)


def unwrap(model):
    """The layer inside ``paddle.DataParallel`` (or the model itself)."""
    return getattr(model, "_layers", model)


def is_distillation_model(model):
    return isinstance(unwrap(model), DistillationModel)


def trained_part(model):
    """The part of ``model`` that training changes: a pair's student, else the model."""
    inner = unwrap(model)
    return inner.student if isinstance(inner, DistillationModel) else model


def has_part(state, part):
    prefix = part + "."
    return any(k.startswith(prefix) for k in state)


def part_state(state, part):
    """``{key without 'part.': value}`` of the keys under ``part.``."""
    prefix = part + "."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def student_state(state):
    """The student's weights under its own names: the ``student.*`` part of a combined state, or
    ``state`` itself when it has no such part (a student's own weights, ``ppcls_student``)."""
    return part_state(state, STUDENT) if has_part(state, STUDENT) else state

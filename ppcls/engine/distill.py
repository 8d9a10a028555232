"""Distillation runs (``use_distillation: True``): the recipe checks, and which weights go where.

``pretrained_model`` is the teacher's weights (a string), or ``[teacher, student]`` with either
entry empty (release/2.0's two forms). The teacher must fit exactly (same classes_num); the
student's weights load as for fine-tuning (the classifier may have another class count). Saving
and resuming need nothing special: the combined layer's state (``teacher.*``, ``student.*``) is
a model state like any other, and ppcls.engine.run_state adds ``ppcls_student.pdparams``.

For evaluation and export ``pretrained_model`` names the weights to score: a combined
checkpoint (its ``student.*`` part is used) or the student's own weights (``ppcls_student``).
"""
from ..modeling.distillation import (DistillNameError, is_distill_name, split_distill_name,
                                     student_state)
from ..modeling.distill_loss import FUNCTIONS
from ..modeling.registry import list_models
from ..utils import checkpoint as ckpt
from ..utils.logger import get_logger
from . import finetune
from .errors import TrainingError


class DistillationError(TrainingError):
    """Weights that a distillation run cannot start from."""


def pair_names(cfg):
    """(teacher name, student name) of a distillation recipe, (None, name) otherwise."""
    name = cfg["ARCHITECTURE"]["name"]
    if not cfg.get("use_distillation"):
        return None, name
    return split_distill_name(name)


def split_pretrained(cfg):
    """(teacher weights, student weights) of a distillation recipe, '' where none."""
    value = cfg["pretrained_model"]
    if isinstance(value, str):
        return value, ""
    value = list(value) + [""] * (2 - len(value))
    return value[0], value[1]


def finetune_weights(cfg):
    """The weights the trained model (the student of a pair) starts from, '' if none."""
    if cfg.get("use_distillation"):
        return split_pretrained(cfg)[1]
    value = cfg["pretrained_model"]
    return value if isinstance(value, str) else ""


def check_distillation(cfg, where):
    """Checks of the distillation keys against each other (called by check_semantics)."""
    name = cfg["ARCHITECTURE"]["name"]
    pair_name = is_distill_name(name) and name not in list_models()
    if not cfg["use_distillation"]:
        if pair_name:
            raise where.child("ARCHITECTURE.name").error(
                f"{name} names a <Teacher>_distill_<Student> pair: set use_distillation: True")
        if cfg["ARCHITECTURE"]["teacher_params"]:
            raise where.child("ARCHITECTURE.teacher_params").error(
                "only a distillation recipe has a teacher (use_distillation: True)")
        if cfg["distillation_loss"] is not None:
            raise where.child("distillation_loss").error(
                "only used when use_distillation is True")
        if not isinstance(cfg["pretrained_model"], str):
            raise where.child("pretrained_model").error(
                "a [teacher, student] list is for distillation recipes (use_distillation: "
                "True); give one weights path")
        return False
    if not pair_name:
        raise where.child("use_distillation").error(
            f"needs ARCHITECTURE.name <Teacher>_distill_<Student> (e.g. DLA34_distill_DLA46_c), "
            f"got {name}")
    try:
        split_distill_name(name)
    except DistillNameError as e:
        raise where.child("ARCHITECTURE.name").error(str(e)) from None
    loss = cfg["distillation_loss"] or {}
    sub = where.child("distillation_loss")
    function = loss.get("function", FUNCTIONS[0])
    temperature = loss.get("temperature", 1.0)
    if not temperature > 0:
        raise sub.child("temperature").error(f"must be > 0, got {temperature}")
    if function != "KL" and temperature != 1.0:
        raise sub.child("temperature").error(
            f"applies to function: KL only (the SSLD loss has no temperature); got {temperature} "
            f"with function: {function}")
    if loss.get("label_weight", 0.0) >= 1.0:
        raise sub.child("label_weight").error(
            "must be < 1 (1 would ignore the teacher: train the student's own recipe instead)")
    if cfg["mode"] == "train" and cfg["lrp"] != 1.0 and not split_pretrained(cfg)[1]:
        raise where.child("lrp").error(
            "scales the learning rate of the student's pretrained layers, but pretrained_model "
            "names no student weights; use pretrained_model: [teacher, student] or lrp: 1.0")
    return True


def load_start_weights(model, cfg, resuming, logger=None):
    """Load ``pretrained_model`` before training: the plain model's (fine-tuning rules), or a
    pair's teacher (exactly) and student (fine-tuning rules). A fresh distillation run without
    teacher weights is an error (see ``missing_teacher``)."""
    logger = logger or get_logger()
    if not cfg.get("use_distillation"):
        if cfg["pretrained_model"]:
            finetune.load_pretrained_for_finetune(model, cfg["pretrained_model"],
                                                  cfg["classes_num"], logger)
        return
    teacher_path, student_path = split_pretrained(cfg)
    teacher_name, student_name = pair_names(cfg)
    if teacher_path:
        try:
            ckpt.load_pretrained(model.teacher, teacher_path)
        except ckpt.CheckpointError as e:
            raise DistillationError(f"pretrained_model (the teacher, {teacher_name}): {e}") from None
        logger.info(f"distillation: teacher {teacher_name} loaded from {teacher_path} (frozen, "
                    f"eval mode)")
    elif not resuming:
        raise DistillationError(missing_teacher(cfg, teacher_name))
    if student_path:
        try:
            finetune.load_pretrained_for_finetune(model.student, student_path,
                                                  cfg["classes_num"], logger)
        except ckpt.CheckpointError as e:
            raise DistillationError(f"pretrained_model[1] (the student, {student_name}): {e}") from None
    else:
        logger.info(f"distillation: student {student_name} starts from its initialisation")


def missing_teacher(cfg, teacher_name):
    """Why a fresh run without teacher weights stops: the default SSLD loss has no label term,
    so the student would learn to copy a random function, and nothing in the log would show it
    until the validation accuracy stays at chance, hours later."""
    arch = cfg["ARCHITECTURE"]["name"]
    return (f"{cfg.get('_source', 'config')}: pretrained_model names no teacher weights, so the "
            f"teacher {teacher_name} of {arch} would be random and the student would learn to "
            f"copy it. Train the teacher first (its own recipe, then -o pretrained_model="
            f"output/{teacher_name}/best_model/ppcls), or give [teacher, student] weights")


def describe_loss(cfg, logger=None):
    """Log the distillation loss; release/2.0 accepts ls_epsilon in a distillation recipe and
    ignores it: say so."""
    logger = logger or get_logger()
    loss = cfg.get("distillation_loss") or {}
    function, weight = loss.get("function", FUNCTIONS[0]), loss.get("label_weight", 0.0)
    logger.info("distillation loss: " + (
        "SSLD (release/2.0: half the symmetric KL between the softmaxes)" if function == "SSLD"
        else f"KL at temperature {loss.get('temperature', 1.0):g}")
        + (f" x {1 - weight:g} + cross-entropy x {weight:g}" if weight else ", labels unused"))
    if cfg["ls_epsilon"] > 0 and not weight:
        logger.warning(
            f"ls_epsilon={cfg['ls_epsilon']} has no effect: the distillation loss uses no labels "
            f"(distillation_loss.label_weight is 0); label smoothing applies to the label part only")


def load_scored_weights(model, cfg):
    """Load ``pretrained_model`` into the model that evaluation or export scores: for a pair the
    student (``student.*`` of a combined checkpoint, or the student's own file)."""
    path = cfg["pretrained_model"]
    if not cfg.get("use_distillation"):
        return ckpt.load_pretrained(model, path)
    if not isinstance(path, str):
        raise DistillationError(scored_weights_hint(cfg, "a [teacher, student] list names "
                                                         "training's starting weights"))
    state = ckpt.load_params_file(path)
    try:
        usable, report = ckpt.fit_state_dict(model, student_state(state),
                                             ckpt.strip_suffix(path) + ".pdparams")
    except ckpt.CheckpointError as e:
        raise DistillationError(scored_weights_hint(cfg, str(e))) from None
    model.set_state_dict(usable)
    return report


def scored_weights_hint(cfg, problem):
    arch = cfg["ARCHITECTURE"]["name"]
    return (f"with a distillation recipe, evaluation and export score the student "
            f"({pair_names(cfg)[1]}): give -o pretrained_model=<model_save_dir>/{arch}/best_model/"
            f"ppcls (the combined checkpoint) or .../best_model/ppcls_student; {problem}")

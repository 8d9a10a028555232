"""A recipe as the engine reads it: the schema checks of ppcls.utils.config, then the checks
that need the model registry, the transforms, the LR schedules and the optimizers, and the model
the recipe names."""
from ..data.mix import check_mix_ops
from ..data.transforms import check_ops
from ..modeling import build_model, get_model_factory
from ..modeling.distill_loss import DistillationLoss
from ..modeling.distillation import DistillationModel
from ..modeling.loss import LabelLoss
from ..optimizer import check_lr_config, check_optimizer_config
from ..utils.config import ConfigError, Where, read_config, to_attr_dict  # noqa: F401
from . import distill
from . import lr_scale
from .errors import TrainingError


def load_config(path, overrides=None, check=True):
    """Read, override and validate a recipe; returns an AttrDict with every default filled in
    (``cfg.TRAIN.batch_size``). Raises ConfigError naming the file, the key and the fix."""
    cfg, source = read_config(path, overrides)
    if check:
        check_semantics(cfg, source)
        lr_scale.inspect(cfg, path, overrides, source)
    return to_attr_dict(cfg, source)


def check_semantics(cfg, source):
    """Cross-key checks and the parameters of named functions (models, LR, optimizer, ops)."""
    where = Where(source)
    distilling = distill.check_distillation(cfg, where)
    if cfg["mode"] == "train" and cfg["TRAIN"] is None:
        raise where.child("TRAIN").error("required for mode: train")
    if (cfg["mode"] == "valid" or cfg["validate"]) and cfg["VALID"] is None:
        raise where.child("VALID").error("required for evaluation (or set validate: False)")
    if cfg["use_mix"] and not (cfg["TRAIN"] or {}).get("mix"):
        raise where.child("TRAIN.mix").error(
            "use_mix is True but no MixupOperator/CutmixOperator/FmixOperator is listed")
    if cfg["ema_decay"] >= 1.0:
        raise where.child("ema_decay").error(f"must be < 1 (e.g. 0.999), got {cfg['ema_decay']}; "
                                             f"0 turns EMA off")
    if cfg["lrp"] != 1.0 and not distill.finetune_weights(cfg) and cfg["mode"] == "train":
        raise where.child("lrp").error("scales the learning rate of pretrained layers, but no "
                                       "pretrained_model is set; set pretrained_model or lrp: 1.0")
    if cfg["TRAIN"] is not None and cfg["TRAIN"]["batch_size"] % cfg["accum_steps"]:
        raise where.child("accum_steps").error(
            f"TRAIN.batch_size={cfg['TRAIN']['batch_size']} is not divisible by "
            f"accum_steps={cfg['accum_steps']}; batch_size is the global batch of one optimizer step")
    if not distilling:
        try:
            get_model_factory(cfg["ARCHITECTURE"]["name"])
        except KeyError as e:
            raise where.child("ARCHITECTURE.name").error(e.args[0]) from None
    check_lr_config(cfg["LEARNING_RATE"], where.child("LEARNING_RATE"))
    warmup = cfg["LEARNING_RATE"]["params"].get("warmup_epoch", 0)
    if isinstance(warmup, (int, float)) and warmup > cfg["epochs"]:
        raise where.child("LEARNING_RATE.params.warmup_epoch").error(
            f"{warmup} warmup epochs but only {cfg['epochs']} epochs; lower it "
            f"(-o LEARNING_RATE.params.warmup_epoch=0) or raise epochs")
    check_optimizer_config(cfg["OPTIMIZER"], where.child("OPTIMIZER"))
    for section in ("TRAIN", "VALID"):
        if cfg[section] is not None:
            check_ops(cfg[section]["transforms"], where.child(f"{section}.transforms"))
            check_mix_ops(cfg[section]["mix"], where.child(f"{section}.mix"))


def model_from_config(cfg, share_frozen_with=None):
    """The recipe's model: ``ARCHITECTURE.name`` with ``ARCHITECTURE.params`` and ``classes_num``;
    for a distillation recipe the combined layer (ppcls.modeling.distillation) of the teacher
    (``ARCHITECTURE.teacher_params``) and the student (``ARCHITECTURE.params``).
    ``share_frozen_with``: a model of this recipe whose frozen teacher the new one reuses (the
    EMA copy averages the student only and needs no second teacher)."""
    teacher_name, student_name = distill.pair_names(cfg)
    student = _build(cfg, student_name, "params")
    if teacher_name is None:
        return student
    teacher = (share_frozen_with.teacher if share_frozen_with is not None
               else _build(cfg, teacher_name, "teacher_params"))
    return DistillationModel(teacher, student)


def scored_model_from_config(cfg):
    """The model evaluation and export score: the recipe's model, or the student of a pair.
    Returns (model, name, its ARCHITECTURE params)."""
    name = distill.pair_names(cfg)[1]
    return _build(cfg, name, "params"), name, dict(cfg["ARCHITECTURE"].get("params") or {})


def _build(cfg, name, key):
    params = dict(cfg["ARCHITECTURE"].get(key) or {})
    try:
        return build_model(name, class_dim=cfg["classes_num"], **params)
    except (TypeError, ValueError) as e:     # unknown parameter / a value the model refuses
        raise TrainingError(f"{cfg.get('_source', 'config')}: ARCHITECTURE.{key} does not fit "
                            f"{name}: {e}") from None


def criterion_from_config(cfg, logger=None):
    """The training loss, ``(loss, logits) = criterion(model output, labels, mix)``: cross-entropy
    (``ls_epsilon``, Mixup/Cutmix), or for a distillation recipe ``distillation_loss``."""
    if not cfg.get("use_distillation"):
        return LabelLoss(cfg["ls_epsilon"])
    distill.describe_loss(cfg, logger)
    return DistillationLoss(epsilon=cfg["ls_epsilon"], **(cfg.get("distillation_loss") or {}))

import glob
import os

import pytest

from ppcls.engine.recipe import load_config
from ppcls.utils.config import ConfigError, parse_override

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "configs/ResNet/ResNet50.yaml")


def write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return str(p)


def template_text():
    with open(TEMPLATE) as f:
        return f.read()


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs/**/*.yaml"), recursive=True)),
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_every_shipped_recipe_validates(path):
    cfg = load_config(path)
    assert cfg.ARCHITECTURE.name
    assert cfg.TRAIN.batch_size >= 1


def test_defaults_filled_and_attribute_access():
    cfg = load_config(TEMPLATE)
    assert cfg.print_interval == 10 and cfg.use_static_eval is True
    assert cfg.TRAIN.transforms[1] == {"RandCropImage": {"size": 224}}
    assert cfg["LEARNING_RATE"]["params"]["decay_epochs"] == [30, 60, 90]


def test_overrides_reach_nested_keys_and_parse_yaml_scalars():
    cfg = load_config(TEMPLATE, ["TRAIN.batch_size=64", "epochs=7", "ls_epsilon=0.1",
                                 "pretrained_model='out/x/ppcls'", "validate=False",
                                 "LEARNING_RATE.params.decay_epochs=[2, 4]"])
    assert cfg.TRAIN.batch_size == 64 and isinstance(cfg.TRAIN.batch_size, int)
    assert cfg.epochs == 7 and cfg.ls_epsilon == 0.1 and cfg.validate is False
    assert cfg.pretrained_model == "out/x/ppcls"
    assert cfg.LEARNING_RATE.params.decay_epochs == [2, 4]


def test_override_values_are_never_evaluated():
    keys, value = parse_override("epochs=__import__('os').getcwd()")
    assert value == "__import__('os').getcwd()"
    with pytest.raises(ConfigError, match="epochs: expected an integer"):
        load_config(TEMPLATE, ["epochs=__import__('os').getcwd()"])


@pytest.mark.parametrize("edit, pattern", [
    (("epochs: 100", "epoch: 100"), r"epoch: unknown key; did you mean 'epochs'\?"),
    (("batch_size: 256", "batch_sise: 256"), r"TRAIN.batch_sise: unknown key; did you mean 'batch_size'\?"),
    (("epochs: 100", "epochs: ten"), r"epochs: expected an integer, got 'ten'"),
    (("validate: True", "validate: yes please"), r"validate: expected true/false"),
    (("classes_num: 1000\n", ""), r"classes_num: required key is missing"),
    (("name: ResNet50", "name: ResNet05"), r"ARCHITECTURE.name: unknown architecture 'ResNet05'; did you mean"),
    (("function: Piecewise", "function: Cosinus"), r"LEARNING_RATE.function: unknown LR schedule 'Cosinus'"),
    (("decay_epochs: [30, 60, 90]", "decay_epoch: [30, 60, 90]"), r"LEARNING_RATE.params.decay_epoch: unknown parameter; did you mean 'decay_epochs'"),
    (("momentum: 0.9", "momentun: 0.9"), r"OPTIMIZER.params.momentun: unknown parameter; did you mean 'momentum'"),
    (("function: L2", "function: L1"), r"OPTIMIZER.regularizer.function: only L2"),
    (("RandFlipImage: {flip_code: 1}", "RandFlipImage: {flipcode: 1}"), r"TRAIN.transforms.2.RandFlipImage.flipcode: unknown parameter; did you mean 'flip_code'"),
    (("RandFlipImage: {flip_code: 1}", "RandomFlip: {flip_code: 1}"), r"TRAIN.transforms.2.RandomFlip: unknown transform"),
    (("RandFlipImage: {flip_code: 1}", "RandFlipImage: {flip_code: 2}"), r"flip_code must be -1, 0 or 1"),
    (("image_shape: [3, 224, 224]", "image_shape: [224, 224]"), r"image_shape: expected 3 integers"),
    (("use_distillation: False", "use_distillation: True"), r"use_distillation: needs ARCHITECTURE.name <Teacher>_distill_<Student>"),
    (("use_mix: False", "use_mix: True"), r"TRAIN.mix: use_mix is True but no"),
    (("gamma: 0.1", "gamma: 0.1\n    warmup_epoch: 200"), r"LEARNING_RATE.params.warmup_epoch: 200 warmup epochs but only 100 epochs"),
])
def test_bad_recipes_fail_with_the_key_the_file_and_a_hint(tmp_path, edit, pattern):
    old, new = edit
    text = template_text()
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path)
    assert path in str(info.value)


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(TEMPLATE, ["epochs"])
    with pytest.raises(ConfigError, match="TRAIN.data_dr: unknown key; did you mean 'data_dir'"):
        load_config(TEMPLATE, ["TRAIN.data_dr=/x"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1,"))

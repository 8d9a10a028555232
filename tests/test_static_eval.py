"""Fast evaluation (oneDNN predictor of the current weights) gives the dygraph logits, and never
costs training its gradients (Paddle 3.3 CPU computes none when training runs static with oneDNN)."""
import os

import numpy as np
import paddle
import pytest

from ppcls.engine.static_eval import eval_forward
from ppcls.engine.train import train
from ppcls.modeling import build_model, list_models
from ppcls.utils import checkpoint as ckpt

# Models the predictor cannot build, evaluated in dygraph instead (none at present: ED-Net's
# grouped transposed convs need Paddle 3.3's transposed-conv + BN fusion pass switched off).
KNOWN_PREDICTOR_FAILURES = set()
ONE_PER_FAMILY = [("DLA46_c", 64), ("ResNet18", 64), ("MobileNetV2", 64), ("ECA_ResNet18", 64),
                  ("RLA_ResNet50", 64), ("ED_ResNet50", 96), ("ReXNet_1_0", 64),
                  ("ReXNet_lite_1_0", 64)]


@pytest.mark.parametrize("name, size", ONE_PER_FAMILY)
def test_static_onednn_eval_equals_dygraph(name, size):
    if name not in list_models():
        pytest.skip(f"{name} is not registered")
    paddle.seed(0)
    model = build_model(name, class_dim=10)
    model.eval()
    x = paddle.to_tensor(np.random.RandomState(0).standard_normal((2, 3, size, size)).astype("float32"))
    with paddle.no_grad():
        ref = model(x).numpy()
        with eval_forward(model, use_static=True, on_cpu=True, threads=2) as forward:
            out = forward(x).numpy()
            assert forward.failed == (name in KNOWN_PREDICTOR_FAILURES)
    assert not model.training
    np.testing.assert_array_less(np.abs(out - ref).max(), 1e-5 * np.abs(ref).max() + 1e-12)
    # training afterwards still runs the dygraph model with gradients
    model.train()
    model(x).sum().backward()
    missing = [n for n, p in model.named_parameters() if not p.stop_gradient and p.grad is None]
    assert not missing, missing[:5]


@pytest.mark.parametrize("mode", ["plain", "mixup", "label_smoothing"])
def test_training_after_static_eval_updates_every_parameter(tiny_cfg, mode):
    """Guard: after an epoch and a static+oneDNN validation, the next epoch still moves every
    trainable parameter (no weight decay, so only gradients can move them)."""
    extra = {"plain": [], "label_smoothing": ["ls_epsilon=0.1"],
             "mixup": ["use_mix=True", "TRAIN.mix=[{MixupOperator: {alpha: 0.2}}]"]}[mode]
    cfg = tiny_cfg(n_train=64, n_val=20, extra=["epochs=2", "use_static_eval=True",
                                                "OPTIMIZER.regularizer={}", *extra])
    train(cfg)
    arch_dir = os.path.join(cfg.model_save_dir, "ResNet18")
    first = ckpt.load_params_file(os.path.join(arch_dir, "0", "ppcls"))
    second = ckpt.load_params_file(os.path.join(arch_dir, "1", "ppcls"))
    model = build_model("ResNet18", class_dim=10)
    trainable = [n for n, p in model.named_parameters() if not p.stop_gradient]
    frozen = [n for n in trainable if np.array_equal(first[n], second[n])]
    assert not frozen, f"parameters not updated after static evaluation: {frozen[:5]}"

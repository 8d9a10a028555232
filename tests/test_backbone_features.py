"""Backbone features for detection/segmentation: every family's ``forward_stages(x)`` returns four
maps at strides 4, 8, 16, 32 whose channels are ``stage_channels`` (docs/finetune.md)."""
import numpy as np
import paddle
import pytest

from ppcls.modeling import build_model, list_models

# One model per family, at a non-224 input where the family allows it (ED-Net: sides with
# s % 64 in {29..32}, so 96; 160 is the other small valid size).
CASES = [
    ("DLA", "DLA46_c", 96),
    ("ResNet", "ResNet50", 96),
    ("MobileNetV2", "MobileNetV2", 128),
    ("ECA-Net", "ECA_ResNet18", 96),
    ("RLA-Net", "RLA_MobileNetV2", 128),
    ("ED-Net", "ED_ResNet50", 96),
    ("ReXNet", "ReXNet_1_0", 128),
]


def _build(name):
    if name not in list_models():
        pytest.skip(f"{name} is not registered yet (its family is still being written)")
    paddle.seed(0)
    model = build_model(name, class_dim=10)
    model.eval()
    return model


@pytest.mark.parametrize("family,name,size", CASES, ids=[c[1] for c in CASES])
def test_forward_stages_strides_and_channels(family, name, size):
    model = _build(name)
    channels = list(model.stage_channels)
    assert len(channels) == 4 and all(isinstance(c, int) and c > 0 for c in channels)
    x = paddle.rand([2, 3, size, size + 32])          # non-square: strides checked per axis
    if name.startswith("ED_"):
        x = paddle.rand([2, 3, size, size])
    with paddle.no_grad():
        feats = model.forward_stages(x)
    assert len(feats) == 4
    for f, c, stride in zip(feats, channels, (4, 8, 16, 32)):
        h, w = x.shape[2], x.shape[3]
        assert list(f.shape) == [2, c, -(-h // stride), -(-w // stride)], (name, stride)
        assert np.isfinite(f.numpy()).all()


@pytest.mark.parametrize("name", ["ResNet18", "DLA46_c", "MobileNetV2", "ReXNet_1_0"])
def test_stages_are_the_classifier_trunk(name):
    """The last stage feeds the classifier: forward(x) == forward_head(forward_features(x)),
    and forward_features is built on the same trunk as forward_stages."""
    model = _build(name)
    x = paddle.rand([2, 3, 64, 64])
    with paddle.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        again = model.forward_head(feats)
        stages = model.forward_stages(x)
    np.testing.assert_allclose(logits.numpy(), again.numpy(), rtol=1e-5, atol=1e-5)
    assert feats.shape[0] == 2 and stages[-1].shape[2:] == [2, 2]


def test_ed_net_rejects_sizes_its_decoder_cannot_restore():
    model = _build("ED_ResNet50")
    with pytest.raises(ValueError, match="128"):
        model.forward_stages(paddle.rand([1, 3, 128, 128]))

"""``ARCHITECTURE.params.attention: none|se|eca`` on the torchvision ResNets (resnet.py)."""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppcls.analysis.flops import count_params, skip_random_init
from ppcls.engine.recipe import model_from_config
from ppcls.modeling import build_model
from ppcls.modeling.architectures import ed_resnet
from ppcls.modeling.architectures.layers import ECA, SELayer, eca_kernel_size
from ppcls.utils.errors import UserError


def _blocks(model):
    return [(s, b) for s in range(4) for b in getattr(model, f"layer{s + 1}")]


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)


def test_eca_adaptive_kernel_rule():
    """psi(C) = |log2(C)/2 + 1/2|_odd, worked by hand: 64 -> 3.5 -> 3; 128 -> 4 -> 5;
    256 -> 4.5 -> 5; 512 -> 5; 1024 -> 5.5 -> 5; 2048 -> 6 -> 7; 32 -> 3 -> 3."""
    assert [eca_kernel_size(c) for c in (32, 64, 128, 256, 512, 1024, 2048)] == [3, 3, 5, 5, 5, 5, 7]
    with skip_random_init():
        r18 = build_model("ResNet18", class_dim=10, attention="eca")
        r50 = build_model("ResNet50", class_dim=10, attention="eca")
    assert [b.eca.k_size for s, b in _blocks(r18) if isinstance(b.eca, ECA)] == [3, 3, 5, 5, 5, 5, 5, 5]
    # Bottleneck outputs 256/512/1024/2048: the k = [5, 5, 5, 7] RLA-Net's ECA models use
    # (reference ARCHITECTURES.md), not ECA-ResNet50's released [3, 5, 5, 7].
    per_stage = {s: b.eca.k_size for s, b in _blocks(r50)}
    assert per_stage == {0: 5, 1: 5, 2: 5, 3: 7}
    assert r50.layer4[0].eca.conv.weight.shape == [1, 1, 7]


def test_eca_with_released_kernels_is_eca_resnet18():
    paddle.seed(3)
    ours = build_model("ResNet18", class_dim=10, attention="eca", k_size=[3, 5, 7, 7])
    paddle.seed(3)
    official = build_model("ECA_ResNet18", class_dim=10)
    assert _same_state(ours, official)          # same names, shapes and initial values
    w = ours.layer4[1].eca.conv.weight.numpy()  # the official ECA init: U(+-1/sqrt(k)), k = 7
    assert 0 < np.abs(w).max() <= 1 / math.sqrt(7)
    x = paddle.to_tensor(np.random.RandomState(0).standard_normal((2, 3, 32, 32)).astype("float32"))
    ours.eval(), official.eval()
    with paddle.no_grad():
        assert np.array_equal(ours(x).numpy(), official(x).numpy())


def test_none_is_the_plain_resnet():
    paddle.seed(1)
    a = build_model("ResNet18", class_dim=10)
    paddle.seed(1)
    b = build_model("ResNet18", class_dim=10, attention="none")
    assert _same_state(a, b)
    assert not any(isinstance(l, (ECA, SELayer)) for l in b.sublayers())
    with skip_random_init():            # torchvision's resnet18 / resnet50 parameter counts
        assert count_params(build_model("ResNet18")) == 11_689_512
        assert count_params(build_model("ResNet50")) == 25_557_032


def test_se_layer_placement_and_size():
    """SE (ED-SE's layer, reduction 16) after the last BN of each residual branch; each adds
    two Linear layers C -> C/16 -> C with biases."""
    assert ed_resnet.SELayer is SELayer                    # one layer, shared with ED-SE
    with skip_random_init():
        for arch, expansion, layers in (("ResNet18", 1, (2, 2, 2, 2)), ("ResNet50", 4, (3, 4, 6, 3))):
            plain = count_params(build_model(arch))
            se = build_model(arch, attention="se")
            extra = 0
            for stage, n in enumerate(layers):
                c = 64 * 2 ** stage * expansion
                extra += n * (c * (c // 16) + c // 16 + (c // 16) * c + c)
            assert count_params(se) == plain + extra
            for _, block in _blocks(se):
                assert block.attn_name == "se" and isinstance(block.se, SELayer)
                c = block.last_bn().weight.shape[0]
                assert block.se.fc_reduction.weight.shape == [c, c // 16]
    # SENet's SE-ResNet-50: 28.09M parameters (Hu et al., Table 1)
    assert round(count_params(se) / 1e6, 2) == 28.09
    with skip_random_init():
        r8 = build_model("ResNet18", attention="se", reduction=8)
    assert r8.layer1[0].se.fc_reduction.weight.shape == [64, 8]


def test_attention_trains():
    paddle.seed(0)
    x = paddle.to_tensor(np.random.RandomState(1).standard_normal((2, 3, 32, 32)).astype("float32"))
    for attention, name in (("se", "fc_reduction"), ("eca", "eca.conv")):
        model = build_model("ResNet18", class_dim=10, attention=attention)
        loss = F.cross_entropy(model(x), paddle.to_tensor([1, 7]))
        loss.backward()
        grads = [p.grad for n, p in model.named_parameters() if name in n]
        assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_attention_errors_name_the_problem():
    with pytest.raises(ValueError, match="none, se, eca"):
        build_model("ResNet18", attention="cbam")
    with pytest.raises(ValueError, match="set attention: eca"):
        build_model("ResNet18", attention="se", k_size=[3, 3, 3, 3])
    with pytest.raises(ValueError, match="set attention: se"):
        build_model("ResNet18", reduction=8)
    with pytest.raises(ValueError, match="builds its own blocks"):
        build_model("ED_ResNet50", attention="se")
    with pytest.raises(ValueError, match="always use ECA"):
        build_model("ECA_ResNet18", attention="se")
    cfg = {"ARCHITECTURE": {"name": "ResNet18", "params": {"attention": "cbam"}},
           "classes_num": 10, "_source": "recipe.yaml"}
    with pytest.raises(UserError, match="recipe.yaml: ARCHITECTURE.params does not fit ResNet18"):
        model_from_config(cfg)

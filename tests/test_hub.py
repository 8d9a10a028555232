"""hubconf.py: ``paddle.hub.list/help/load(REPO, ..., source='local')`` for every registered model."""
import os
import re

import numpy as np
import paddle
import pytest

import ppcls
from ppcls.analysis.flops import count_params, skip_random_init

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zoo_params():
    """{model: params in millions} from docs/model_zoo.md (the generated table)."""
    rows = re.findall(r"^\| [^|]+ \| (\w+) \| ([\d.]+) \|", open(os.path.join(ROOT, "docs",
                      "model_zoo.md"), encoding="utf-8").read(), re.M)
    return {name: float(m) for name, m in rows}


def test_hub_lists_and_builds_every_model():
    names = paddle.hub.list(ROOT, source="local")
    assert sorted(names) == sorted(ppcls.list_models()) and len(names) > 50
    assert "DLA60" in paddle.hub.help(ROOT, "DLA60", source="local")
    table = zoo_params()
    assert set(table) == set(names)
    with skip_random_init():            # shapes only: the counts do not depend on the values
        for name in names:
            model = paddle.hub.load(ROOT, name, source="local")
            assert not model.training
            assert round(count_params(model) / 1e6, 2) == table[name], name


def test_hub_load_with_weights_equals_build_model(tmp_path):
    paddle.seed(1)
    src = ppcls.build_model("ReXNet_lite_1_0", class_dim=6)
    weights = str(tmp_path / "rexnet.pdparams")
    paddle.save(src.state_dict(), weights)
    hub = paddle.hub.load(ROOT, "ReXNet_lite_1_0", source="local", pretrained=weights)
    ref = ppcls.build_model("ReXNet_lite_1_0", class_dim=6)
    ref.set_state_dict(paddle.load(weights))
    ref.eval()
    assert list(hub.state_dict()) == list(ref.state_dict())
    for (k, a), b in zip(hub.state_dict().items(), ref.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    x = paddle.to_tensor(np.random.RandomState(0).standard_normal([2, 3, 64, 64]).astype("float32"))
    with paddle.no_grad():
        out = hub(x).numpy()
        assert out.shape == (2, 6)
        np.testing.assert_array_equal(out, ref(x).numpy())
    # keyword arguments reach the model; errors are the API's
    two = paddle.hub.load(ROOT, "MobileNetV2", source="local", class_dim=2)
    assert two(paddle.zeros([1, 3, 32, 32])).shape == [1, 2]
    with pytest.raises(ppcls.ModelError, match="never downloads weights"):
        paddle.hub.load(ROOT, "DLA34", source="local", pretrained=True)

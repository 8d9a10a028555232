"""Parity fixtures (tests/fixtures/parity, copied from shared/reference/parity): regenerate the
official-named weights by the fixture rule, convert them with the suite's converter, and compare
our eval-mode logits with the official ones."""
import json
import os
import zlib

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "parity")


def load_fixture(name):
    with open(os.path.join(FIXTURES, f"{name}.json")) as f:
        return json.load(f)


def rule_tensor(name, shape):
    """The fixture README's weight rule, tensor by tensor."""
    rng = np.random.RandomState(zlib.crc32(name.encode("utf-8")))
    if name.endswith("running_mean"):
        value = rng.uniform(-0.1, 0.1, shape)
    elif name.endswith("running_var"):
        value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) <= 1 and name.endswith("weight"):
        value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) <= 1:
        value = rng.uniform(-0.1, 0.1, shape)
    else:
        value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
    return np.asarray(value, dtype=np.float32)


def official_state_dict(fixture):
    """What the official model's state_dict holds: every tensor, aliases included (PyTorch
    lists a shared module once per place it is used)."""
    sd = {name: rule_tensor(name, shape) for name, shape in fixture["params"]}
    for alias, canonical in (fixture.get("aliases") or {}).items():
        sd[alias] = sd[canonical]
    return sd


def fixture_input(fixture):
    shape = fixture["input"]["shape"]
    return np.random.RandomState(0).standard_normal(shape).astype(np.float32)


def run_parity(fixture_name, arch, **model_kwargs):
    """Convert the fixture's weights into ``arch`` and return (model, ours, expected, report)."""
    import paddle
    from ppcls.convert import convert_state_dict
    from ppcls.modeling import build_model

    fixture = load_fixture(fixture_name)
    weights, report = convert_state_dict(arch, official_state_dict(fixture), source=fixture_name)
    model = build_model(arch, class_dim=report["class_dim"], **model_kwargs)
    model.set_state_dict(weights)
    model.eval()
    with paddle.no_grad():
        ours = model(paddle.to_tensor(fixture_input(fixture))).numpy()
    return model, ours, np.asarray(fixture["output"], dtype=np.float32), report


def assert_logits_close(ours, expected, rtol=1e-5):
    """The fixture criterion: per row, max|ours - expected| <= rtol * max|expected|."""
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    for row, (a, b) in enumerate(zip(ours, expected)):
        err = float(np.abs(a - b).max())
        scale = float(np.abs(b).max())
        assert err <= rtol * scale, f"row {row}: max abs err {err:.3g} > {rtol} x {scale:.3g}"

"""Parity fixtures (tests/fixtures/parity, copied from shared/reference/parity): regenerate the
official-named weights by the fixture rule, convert them with the suite's converter, and compare
our eval-mode logits with the official ones."""
import json
import os
import zlib

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "parity")
# PaddleClas's own models (Paddle names and layout), copied from shared/reference/parity/paddleclas
PADDLECLAS_FIXTURES = os.path.join(os.path.dirname(FIXTURES), "parity_paddleclas")
# Official float64 logits for the fixtures whose float32 output is rounding-limited (see its
# "note"): {"outputs": {name: [2, 1000]}, "outputs_bn_eps_float32": {name: [2, 1000]}}.
FLOAT64 = os.path.join(os.path.dirname(FIXTURES), "parity_float64.json")
_float64_cache = {}


def load_fixture(name, directory=FIXTURES):
    with open(os.path.join(directory, f"{name}.json")) as f:
        return json.load(f)


def rule_tensor(name, shape):
    """The fixture README's weight rule, tensor by tensor (with the PaddleClas fixtures' two
    endings for Paddle's BN statistics, which no PyTorch name has)."""
    rng = np.random.RandomState(zlib.crc32(name.encode("utf-8")))
    if name.endswith(("running_mean", "._mean")):
        value = rng.uniform(-0.1, 0.1, shape)
    elif name.endswith(("running_var", "._variance")):
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


def official_float64(fixture_name, bn_eps_float32=False):
    """The official model's float64 logits for the fixture's weights and input, or None if not
    recorded. ``bn_eps_float32``: the official model run with every BatchNorm eps at
    float32(1e-5), as Paddle's batch_norm kernel takes it (recorded for the chaotic fixtures)."""
    if not _float64_cache:
        with open(FLOAT64) as f:
            _float64_cache.update(json.load(f))
    key = "outputs_bn_eps_float32" if bn_eps_float32 else "outputs"
    rows = _float64_cache[key].get(fixture_name)
    return None if rows is None else np.asarray(rows, dtype=np.float64)


def run_parity_float64(model, fixture):
    """Our converted ``model`` (eval mode) in float64 on the fixture input (float64 copy of the
    float32 input); the model is cast back to float32 afterwards (exact: its values are float32)."""
    import paddle

    if isinstance(fixture, str):
        fixture = load_fixture(fixture)
    x = fixture_input(fixture).astype(np.float64)
    model.to(dtype="float64")
    try:
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()
    finally:
        model.to(dtype="float32")


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
    """The fixture criterion: per row, max|ours - expected| <= rtol * max|expected|. Returns the
    largest ratio max|ours - expected| / max|expected| over the rows (the measured error)."""
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    worst = 0.0
    for row, (a, b) in enumerate(zip(ours, expected)):
        err = float(np.abs(a - b).max())
        scale = float(np.abs(b).max())
        assert err <= rtol * scale, f"row {row}: max abs err {err:.3g} > {rtol} x {scale:.3g}"
        worst = max(worst, err / scale)
    return worst

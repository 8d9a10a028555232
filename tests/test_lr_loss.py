import math

import numpy as np
import paddle
import pytest

from ppcls.modeling.loss import cross_entropy, mix_cross_entropy
from ppcls.optimizer.lr import Cosine, Exponential, Piecewise
from ppcls.utils.metrics import topk_correct


def lrs(sched, steps):
    out = []
    for _ in range(steps):
        out.append(sched.get_lr())
        sched.step()
    return out


def test_piecewise_with_warmup_starts_at_zero_and_decays_at_epochs():
    s = Piecewise(lr=0.1, steps_per_epoch=10, epochs=6, decay_epochs=[2, 4], gamma=0.1, warmup_epoch=1)
    v = lrs(s, 60)
    assert v[0] == 0.0 and v[5] == pytest.approx(0.05)          # linear warmup from 0
    assert v[10] == pytest.approx(0.1) and v[19] == pytest.approx(0.1)
    assert v[20] == pytest.approx(0.01) and v[40] == pytest.approx(0.001)
    s2 = Piecewise(lr=0.1, steps_per_epoch=10, epochs=6, decay_epochs=[2], values=[0.3, 0.03])
    assert lrs(s2, 21)[::10] == pytest.approx([0.3, 0.3, 0.03])


def test_cosine_and_exponential():
    c = Cosine(lr=0.4, steps_per_epoch=10, epochs=5, warmup_epoch=1)
    v = lrs(c, 50)
    assert v[10] == pytest.approx(0.4) and v[30] == pytest.approx(0.2)   # half way after warmup
    assert v[49] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))
    e = Exponential(lr=0.045, steps_per_epoch=4, epochs=10, gamma=0.98)
    v = lrs(e, 12)
    assert v[3] == pytest.approx(0.045) and v[4] == pytest.approx(0.045 * 0.98)
    assert v[8] == pytest.approx(0.045 * 0.98 ** 2)


def test_scheduler_state_resumes_exactly():
    a = Cosine(lr=0.1, steps_per_epoch=7, epochs=3, warmup_epoch=1)
    lrs(a, 9)
    b = Cosine(lr=0.1, steps_per_epoch=7, epochs=3, warmup_epoch=1)
    b.set_state_dict(a.state_dict())
    assert lrs(a, 5) == lrs(b, 5)


def test_label_smoothing_matches_hand_computation():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], np.float32)
    labels = np.array([0, 2])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    eps = 0.1
    target = np.full((2, 3), eps / 3) + np.eye(3)[labels] * (1 - eps)
    expected = -(target * logp).sum(1).mean()
    got = float(cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(labels), eps))
    assert got == pytest.approx(expected, rel=1e-6)
    plain = float(cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(labels)))
    assert plain == pytest.approx(-logp[[0, 1], labels].mean(), rel=1e-6)


def test_mixed_loss_is_the_lam_weighted_sum():
    logits = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    a, b = np.array([0, 1]), np.array([1, 1])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    lam = 0.3
    expected = lam * -logp[[0, 1], a].mean() + (1 - lam) * -logp[[0, 1], b].mean()
    got = float(mix_cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(a), paddle.to_tensor(b), lam))
    assert got == pytest.approx(expected, rel=1e-6)


def test_topk():
    logits = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    hits = topk_correct(logits, np.array([0, 2]), (1, 2))
    assert hits[1].tolist() == [0.0, 0.0] and hits[2].tolist() == [1.0, 1.0]

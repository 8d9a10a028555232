"""Which naming a checkpoint uses, from its keys alone.

  official    PyTorch names (``running_mean``/``running_var``): the official repositories and
              torchvision; timm's ResNet/ResNeXt/DLA use them too
  timm        timm's own ReXNet names (``stem.conv``, ``features.N.conv_dw``, ``head.fc``)
  paddleclas  PaddleClas's ResNet/ResNeXt/MobileNetV2/_vd names (``stem.0.conv``, ``blocks.K``,
              ``conv._conv``, ``bb_S_J``, ``_conv_stem``, ``res2a_branch2a_weights``...)
  suite       Paddle names that are this suite's own (``_mean``/``_variance``, no PaddleClas
              layer names): PaddleClas's DLA and ReXNet ``.pdparams``, or this suite's own weights

``official``/``timm`` are PyTorch layout (Linear ``[out, in]``), ``paddleclas``/``suite`` Paddle
layout; the same Rules serve ``official`` and ``timm`` (see rexnet.py).
"""
import re
from dataclasses import dataclass

PYTORCH_NAMINGS = ("official", "timm")
PADDLE_NAMINGS = ("paddleclas", "suite")


@dataclass(frozen=True)
class Naming:
    kind: str      # official | timm | paddleclas | suite
    label: str     # what the log says, with example keys


# (regex on a key, label): the first PaddleClas signature found names the naming
_PADDLECLAS = [
    (r"^conv\d+\._first_block\.", "PaddleClas MobileNetV2 naming (conv1._conv..., conv2._first_block...)"),
    (r"^conv1_1\._conv\.", "PaddleClas release/2.0 _vd naming (conv1_1._conv..., bb_S_J...)"),
    (r"^stem\.0\.conv\.|^blocks\.\d+\.conv0\.conv\.", "PaddleClas naming (stem.0.conv..., blocks.K...)"),
    (r"^bb_\d+_\d+\.", "PaddleClas naming (conv._conv..., bb_S_J.convN...)"),
    (r"^_conv_stem\.|^_conv\d_\d+\._conv0\.", "PaddleClas naming (_conv_stem..., _convS_J._convN...)"),
    (r"^res\d[a-z]\d*\.conv0\._conv\.", "PaddleClas release/2.0 naming (conv._conv..., res2a.conv0...)"),
    (r"_weights$|_scale$|_offset$|^fc_0\.[wb]_0$",
     "PaddleClas static-graph parameter names (conv1_weights, res2a_branch2a_weights...)"),
    (r"\._(conv|batch_norm|bn)\.", "PaddleClas layer names (._conv/._batch_norm)"),
]
_TIMM = re.compile(r"^stem\.conv\.|^stem\.bn\.|\.conv_dw\.|\.conv_pwl\.|^head\.fc\.")


def detect_naming(names):
    names = list(names)
    for pattern, label in _PADDLECLAS:
        if any(re.search(pattern, n) for n in names):
            return Naming("paddleclas", label)
    if any(n.endswith(("._mean", "._variance")) for n in names):
        return Naming("suite", "this suite's names (_mean/_variance), as PaddleClas's DLA and "
                               "ReXNet .pdparams have")
    if any(_TIMM.search(n) for n in names):
        return Naming("timm", "timm naming (stem.conv, features.N.conv_dw..., head.fc)")
    return Naming("official", "official PyTorch naming (running_mean/running_var...)")

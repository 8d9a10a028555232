"""ReXNet / ReXNet-lite: official clovaai/rexnet checkpoints, and timm's ``rexnet_*`` ones.

Our names are the official ones (``features.N...``, ``output.N...``), so an official checkpoint
needs no rename. timm re-packaged the same ReXNetV1 weights under its own names; the rename
rules below map those onto the official ones. Every pattern is anchored and needs a token that
only timm uses (``stem.``, ``conv_exp``, ``conv_dw``, ``se``, ``conv_pwl``, ``features.N.conv.`` /
``features.N.bn.``, ``head.fc``), so on an official checkpoint they are all no-ops and one
Rules entry serves both namings (tests/test_rexnet.py checks that no official name matches).

timm -> official, block ``i`` of timm's ``features`` (0-15) being official ``features.{i+3}``:
  stem.conv / stem.bn                  -> features.0 / features.1
  features.i.conv_exp.conv / .bn       -> features.{i+3}.out.0 / out.1
  features.i.conv_dw.conv / .bn        -> out.0 / out.1 for block 0 (no expansion), else out.3 / out.4
  features.i.se.fc1 / .bn / .fc2       -> out.5.fc.0 / fc.1 / fc.3
  features.i.conv_pwl.conv / .bn       -> out.3 / out.4 (block 0), out.6 / out.7 (blocks 1-2, no SE),
                                          out.7 / out.8 (blocks 3-15, with SE)
  features.16.conv / .bn (head conv)   -> features.19 / features.20
  head.fc (a Linear)                   -> output.1 (a 1x1 conv: [out, in] -> [out, in, 1, 1])
timm has no ReXNet-lite, so the lite models take official checkpoints only.
"""
from .core import Rules, register_rules

_OFFSET = 3           # official features.0-2 are the stem conv/BN/act; timm keeps them in `stem`
_FIRST_SE_BLOCK = 3   # SE from stage 3 on: blocks 3-15 (stages [1, 2, 2, 3, 3, 5])


def _conv_bn(first, kind):
    return first if kind == "conv" else first + 1


def _block(m):
    i, part, kind = int(m.group(1)), m.group(2), m.group(3)
    if part == "conv_exp":
        idx = _conv_bn(0, kind)
    elif part == "conv_dw":
        idx = _conv_bn(0 if i == 0 else 3, kind)
    elif part == "se":
        idx = "5.fc." + {"fc1": "0", "bn": "1", "fc2": "3"}[kind]
    else:  # conv_pwl
        first = 3 if i == 0 else (6 if i < _FIRST_SE_BLOCK else 7)
        idx = _conv_bn(first, kind)
    return f"features.{i + _OFFSET}.out.{idx}."


def _head_conv(m):
    return f"features.{int(m.group(1)) + _OFFSET + (0 if m.group(2) == 'conv' else 1)}."


TIMM_RENAME = [
    (r"^stem\.conv\.", "features.0."),
    (r"^stem\.bn\.", "features.1."),
    (r"^features\.(\d+)\.(conv_exp|conv_dw|conv_pwl)\.(conv|bn)\.", _block),
    (r"^features\.(\d+)\.(se)\.(fc1|bn|fc2)\.", _block),
    (r"^features\.(\d+)\.(conv|bn)\.", _head_conv),
    (r"^head\.fc\.", "output.1."),
]

register_rules(r"ReXNet_\d_\d", Rules(rename=TIMM_RENAME, head="output.1.weight"))
register_rules(r"ReXNet_lite_\d_\d", Rules(head="output.4.weight"))

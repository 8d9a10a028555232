"""PaddleClas ``.pdparams`` -> this suite: names, what transfers, and why the rest does not.

PaddleClas's weights are Paddle tensors already (Linear ``[in, out]``, BN ``_mean``/``_variance``),
so only names change. Its ResNet/ResNeXt are torchvision's network (v1.5: stride on the 3x3)
under four namings, all renamed here to torchvision's names, which ours are:

  2.1+ ``legendary_models/resnet.py``   stem.0.conv / stem.0.bn, blocks.K.conv{0,1,2}.{conv,bn},
                                        blocks.K.short.{conv,bn}, fc        (K counts all blocks)
  release/2.0 ``resnet.py``             conv._conv / conv._batch_norm, res2a.conv0._conv ...,
                                        res4b12.short._batch_norm, out     (blocks named res{S}{a,b..}
                                        or res4b{N} in ResNet101/152's third stage)
  ``resnext.py`` (2.0 and 2.x)          conv._conv, bb_{S}_{J}.conv{0,1,2}._conv/_batch_norm, out
  ``resnext101_wsl.py``                 _conv_stem._conv/_bn, _conv{S}_{J}._conv{0,1,2}._conv/_bn,
                                        _conv{S}_{J}._short._conv._conv/_bn, _out
  static-graph parameter names          conv1_weights (res_conv1_weights), bn_conv1_scale/_offset/
  (``load_static_weights: True``)       _mean/_variance, res2a_branch2a_weights, bn2a_branch2a_scale,
                                        res2a_branch1_weights, fc_0.w_0 (fc_weights)

conv0/1/2 are torchvision's conv1/2/3 (bn1/2/3), ``short`` its ``downsample.0/1``. PaddleClas's
DLA and ReXNet already use this suite's names and load as they are.

Refused, with the reason, because PaddleClas built another network under the same name:
ResNet18/34 (a 1x1 conv+BN shortcut on the first block, ``blocks.0.short``; a ResNet18/34 trained
with ``use_first_short_conv=False`` has none and converts), MobileNetV2 (an expand conv in the
first inverted-residual block) and every ``_vd`` (three-conv stem, average-pool shortcuts).
"""
import re

from .core import ConversionError, Rules, register_rules, rename_with

# our model -> PaddleClas's name for the same network (for messages)
PADDLECLAS_NAMES = {"ResNeXt101_32x8d": "ResNeXt101_32x8d_wsl"}
ALIASES = {v: k for k, v in PADDLECLAS_NAMES.items()}   # -a ResNeXt101_32x8d_wsl works too

CONVERTS = "ResNet50/101/152, ResNeXt50_32x4d and ResNeXt101_32x8d_wsl"
LOADS_AS_IS = "DLA34-DLA169 and ReXNet_1_0-ReXNet_3_0"
WHAT_TRANSFERS = (f"PaddleClas weights that convert: {CONVERTS}; that load as they are: "
                  f"{LOADS_AS_IS}")

FIRST_SHORTCUT = ("PaddleClas's {name} adds a 1x1 conv+BN shortcut to the first block "
                  "(blocks.0.short), which torchvision's {name} (ours) does not have: another "
                  "network, its weights do not transfer")
MOBILENETV2 = ("PaddleClas's MobileNetV2 has an expand conv in its first inverted-residual block "
               "(conv2._first_block._expand_conv, 32->32 channels) that torchvision's MobileNetV2 "
               "(ours) does not have: another network, its weights do not transfer")
DEEP_STEM = ("PaddleClas's _vd models (ResNet*_vd, ResNeXt*_vd...) have a three-conv 3x3 stem "
             "and average-pool shortcuts that torchvision's ResNet/ResNeXt (ours) do not have: "
             "another network, their weights do not transfer")


# ---------------------------------------------------------------------------- renaming
def _bn_part(kind):
    return {"scale": "weight", "offset": "bias", "mean": "_mean", "variance": "_variance"}[kind]


def _res_block(letter, number):
    """Block index of release/2.0's ``res{S}{letter}{number}`` (res4a, res4f, res4b22)."""
    return int(number) if number else ord(letter) - ord("a")


_BRANCH = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample.0"}
_BRANCH_BN = {"2a": "bn1", "2b": "bn2", "2c": "bn3", "1": "downsample.1"}


def _static_conv(m):
    return f"layer{int(m[1]) - 1}.{_res_block(m[2], m[3])}.{_BRANCH[m[4]]}.weight"


def _static_bn(m):
    return f"layer{int(m[1]) - 1}.{_res_block(m[2], m[3])}.{_BRANCH_BN[m[4]]}.{_bn_part(m[5])}"


RENAME = [
    # stems
    (r"^stem\.0\.conv\.", "conv1."), (r"^stem\.0\.bn\.", "bn1."),
    (r"^conv\._conv\.", "conv1."), (r"^conv\._batch_norm\.", "bn1."),
    (r"^_conv_stem\._conv\.", "conv1."), (r"^_conv_stem\._bn\.", "bn1."),
    # blocks (the 2.1+ blocks.K were made layer{S}.{J}. by _stages_from_shortcuts)
    (r"^res(\d)([a-z])(\d*)\.", lambda m: f"layer{int(m[1]) - 1}.{_res_block(m[2], m[3])}."),
    (r"^bb_(\d)_(\d+)\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}."),
    (r"^_conv(\d)_(\d+)\.", r"layer\1.\2."),
    # layers inside a block
    (r"\.(?:_?conv)([012])\.(?:conv|_conv)\.", lambda m: f".conv{int(m[1]) + 1}."),
    (r"\.(?:_?conv)([012])\.(?:bn|_batch_norm|_bn)\.", lambda m: f".bn{int(m[1]) + 1}."),
    (r"\.(?:short|_short\._conv)\.(?:conv|_conv)\.", ".downsample.0."),
    (r"\.(?:short|_short\._conv)\.(?:bn|_batch_norm|_bn)\.", ".downsample.1."),
    # classifier
    (r"^_?out\.", "fc."),
    # static-graph parameter names
    (r"^(?:res_)?conv1_weights$", "conv1.weight"),
    (r"^bn_conv1_(scale|offset|mean|variance)$", lambda m: f"bn1.{_bn_part(m[1])}"),
    (r"^res(\d)([a-z])(\d*)_branch(2a|2b|2c|1)_weights$", _static_conv),
    (r"^bn(\d)([a-z])(\d*)_branch(2a|2b|2c|1)_(scale|offset|mean|variance)$", _static_bn),
    (r"^(?:fc_0\.w_0|fc_weights)$", "fc.weight"),
    (r"^(?:fc_0\.b_0|fc_offset)$", "fc.bias"),
]

_FLAT_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _stages_from_shortcuts(src):
    """2.1+ numbers the blocks 0..N-1 across stages; a stage starts at block 0 and at every
    block with a ``short`` projection (each later stage changes stride and width), so the
    weights themselves say where ``blocks.K`` belongs: ``layer{S}.{J}``."""
    flat = {int(m[1]) for m in map(_FLAT_BLOCK.match, src) if m}
    if not flat:
        return src
    starts = sorted({0} | {k for k in flat if f"blocks.{k}.short.conv.weight" in src})
    where = {}
    for k in flat:
        stage = max(i for i, s in enumerate(starts) if s <= k)
        where[k] = f"layer{stage + 1}.{k - starts[stage]}."
    return {_FLAT_BLOCK.sub(lambda m: where[int(m[1])], name): v for name, v in src.items()}


RULES = Rules(prepare=_stages_from_shortcuts, rename=RENAME, head="fc.weight", paddle_layout=True)
register_rules(r"ResNet(18|34|50|101|152)|ResNeXt50_32x4d|ResNeXt101_32x8d", RULES,
               naming="paddleclas")


# ---------------------------------------------------------------------------- identification
_DEEP_STEM = re.compile(r"^(stem\.[12]\.|conv1_[123][._])")
_MOBILENETV2 = re.compile(r"^conv2\._first_block\._expand_conv\.|^conv2_1_expand_weights$")
_BOTTLENECK_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}
_BASIC_DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34}
_TORCHVISION_KEY = re.compile(r"(conv1|bn1|fc)\.\w+"
                              r"|layer[1-4]\.\d+\.(conv[123]|bn[123]|downsample\.[01])\.\w+")
TARGETS = ("ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNeXt50_32x4d",
           "ResNeXt101_32x8d")


def identify(src):
    """PaddleClas's name of the network whose weights ``src`` (PaddleClas names) holds, read
    from the weights alone (block counts, bottleneck or basic blocks, grouped 3x3 width), or
    None if it is no ResNet/ResNeXt. Raises ConversionError, with the reason, for the networks
    whose weights do not transfer."""
    if any(_MOBILENETV2.search(n) for n in src):
        raise ConversionError(MOBILENETV2)
    if any(_DEEP_STEM.search(n) for n in src):
        raise ConversionError(DEEP_STEM)
    renamed, _ = rename_with(RULES, src)
    blocks = {}
    for name in renamed:
        m = re.match(r"layer([1-4])\.(\d+)\.", name)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    depth = tuple(len(blocks.get(s, ())) for s in (1, 2, 3, 4))
    w = renamed.get("layer1.0.conv2.weight")
    if not all(depth) or w is None or w.ndim != 4:
        return None
    for ours, theirs in zip(renamed, src):         # same order: the rules drop nothing
        if not _TORCHVISION_KEY.fullmatch(ours):
            raise ConversionError(f"{theirs!r} is a layer that torchvision's ResNet/ResNeXt "
                                  f"(ours) do not have (SE, attention...): another network")
    if "layer1.0.conv3.weight" not in renamed:                  # basic blocks
        layers = _BASIC_DEPTHS.get(depth)
        if layers is None:
            return None
        if "layer1.0.downsample.0.weight" in renamed:
            raise ConversionError(FIRST_SHORTCUT.format(name=f"ResNet{layers}"))
        return f"ResNet{layers}"
    layers = _BOTTLENECK_DEPTHS.get(depth)
    if layers is None:
        return None
    groups = int(w.shape[0]) // int(w.shape[1])
    if groups == 1:
        return f"ResNet{layers}"
    wsl = "_wsl" if any(n.startswith("_conv_stem.") for n in src) else ""
    return f"ResNeXt{layers}_{groups}x{int(w.shape[0]) // groups}d{wsl}"


def check_transfer(arch, src, label, source="checkpoint"):
    """Refuse, in one line naming ``source``, PaddleClas weights ``src`` that do not fit our
    model ``arch``; returns PaddleClas's name of the network they hold."""
    try:
        held = identify(src)
    except ConversionError as e:
        raise ConversionError(f"{source}: {e}; {WHAT_TRANSFERS}") from None
    if held is None:
        first = next(iter(src))
        raise ConversionError(f"{source} has {label}, but it is no network the converter knows "
                              f"(first key {first!r}); {WHAT_TRANSFERS}")
    ours = ALIASES.get(held, held)
    if ours not in TARGETS:
        raise ConversionError(f"{source}: these are PaddleClas {held} weights, this suite has no "
                              f"such model; {WHAT_TRANSFERS}")
    if ours != arch:
        raise ConversionError(f"{source}: these are PaddleClas {held} weights, not "
                              f"{PADDLECLAS_NAMES.get(arch, arch)}: use -a {held}")
    return held


def refuse_arch(arch):
    """The reason ``-a arch`` names a PaddleClas network this suite does not have, or None."""
    if re.search(r"_vd(_|$)", arch):
        return f"{arch}: {DEEP_STEM}; {WHAT_TRANSFERS}"
    if re.fullmatch(r"MobileNetV2_\w+", arch):
        return f"{arch}: {MOBILENETV2}; {WHAT_TRANSFERS}"
    if arch.endswith("_wsl") and arch not in ALIASES:
        return (f"{arch}: this suite has no such model (of the _wsl models only "
                f"ResNeXt101_32x8d_wsl converts, into ResNeXt101_32x8d)")
    return None

"""DLA (ucbdrive/dla): our names are the official ones; only the dead projections go.

In the official ``Tree``, a tree with more than one level builds ``project`` (1x1 conv + BN)
whose output is handed to a sub-tree that ignores it; our port does not build those layers.
A tree at depth ``d`` under ``level{i}`` (``level{i}``, ``level{i}.tree1``, ``.tree2``...)
has ``levels[i] - d`` levels, so its projection is dead exactly when ``d <= levels[i] - 2``.
The per-level depths are all the rule needs (channel counts only decide whether a
``project`` exists at all, and a rule that matches no key drops nothing).
"""
from .core import Rules, register_rules

DEAD_PROJECTION = "dead DLA projection (output unused in the official forward)"

# levels of base_layer/level0..level5 per model; tests/test_dla.py checks that this table
# equals the model definitions (ppcls.modeling.architectures.dla.DLA_CONFIGS).
DLA_LEVELS = {
    "DLA34": [1, 1, 1, 2, 2, 1],
    "DLA46_c": [1, 1, 1, 2, 2, 1],
    "DLA46x_c": [1, 1, 1, 2, 2, 1],
    "DLA60x_c": [1, 1, 1, 2, 3, 1],
    "DLA60": [1, 1, 1, 2, 3, 1],
    "DLA60x": [1, 1, 1, 2, 3, 1],
    "DLA102": [1, 1, 1, 3, 4, 1],
    "DLA102x": [1, 1, 1, 3, 4, 1],
    "DLA102x2": [1, 1, 1, 3, 4, 1],
    "DLA169": [1, 1, 2, 3, 5, 1],
}


def dead_projection_patterns(levels):
    """Regexes of the official ``project`` keys of every tree with more than one level."""
    patterns = []
    for i in range(2, 6):
        max_depth = levels[i] - 2
        if max_depth >= 0:
            patterns.append(rf"^level{i}(\.tree[12]){{0,{max_depth}}}\.project\.")
    return patterns


for _arch, _levels in DLA_LEVELS.items():
    register_rules(_arch.replace(".", r"\."), Rules(
        drop=[(p, DEAD_PROJECTION) for p in dead_projection_patterns(_levels)],
        head="fc.weight"))

"""Official checkpoints -> Paddle weights. Each family module registers its Rules."""
from .core import (ConversionError, Rules, apply_rules, convert_state_dict, load_source,  # noqa: F401
                   match_to_model, normalise_source, register_rules, rules_for)
from . import dla, resnet, eca, rla, ed, rexnet  # noqa: F401,E402  (register the rules)

"""Official / timm / PaddleClas checkpoints -> Paddle weights. Each family module registers its
Rules; pipeline.convert_checkpoint detects the naming and refuses what cannot transfer."""
from .core import (ConversionError, Rules, apply_rules, convert_state_dict, load_source,  # noqa: F401
                   match_to_model, normalise_source, register_rules, rules_for)
from . import dla, resnet, eca, rla, ed, rexnet, paddleclas  # noqa: F401,E402  (register the rules)
from .naming import Naming, detect_naming  # noqa: F401,E402
from .pipeline import NAMINGS, convert_checkpoint  # noqa: F401,E402

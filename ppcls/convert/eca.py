"""ECA-Net (BangguWu/ECANet) and torchvision MobileNetV2: our names are the official ones.

Official ECA checkpoints are training checkpoints (``{"epoch", "arch", "state_dict",
"best_prec1", "optimizer"}``) saved from a DataParallel model (``module.`` prefix); the core
unwraps both. The ECA layer's ``conv.weight`` [1, 1, k] has the same layout in Paddle's Conv1D.
"""
from .core import Rules, register_rules

register_rules(r"ECA_ResNet\d+", Rules(head="fc.weight"))
register_rules(r"ECA_MobileNetV2|MobileNetV2", Rules(head="classifier.1.weight"))

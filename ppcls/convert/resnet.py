"""torchvision ResNet/ResNeXt: our names are torchvision's, nothing to rename or drop."""
from .core import Rules, register_rules

register_rules(r"ResNet\d+|ResNeXt\d+_\d+x\d+d", Rules(head="fc.weight"))

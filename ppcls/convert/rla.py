"""RLA-Net (fangyanwen1106/RLANet): our names are the official ones.

The RLA-MobileNetV2 models keep ONE recurrent conv; the official ``nn.ModuleList([conv] * 5)``
lists that same module once per new cell, so its state_dict repeats the tensor under
``recurrent_(ds)convs.1`` ... ``.4``. Index 0 maps to our single conv; the repeats are dropped.
(The ResNets' ``recurrent_convs.0-3`` are four distinct per-stage convs: nothing dropped there.)
"""
from .core import Rules, register_rules

register_rules(r"RLA_(ECA_)?ResNet\d+", Rules(head="fc.weight"))

register_rules(r"RLA_(ECA_)?MobileNetV2(_FullConv)?", Rules(
    drop=[(r"^recurrent_(ds)?convs\.[1-9]\d*\.weight$",
           "alias of recurrent_(ds)convs.0: the official model shares one recurrent conv "
           "across all cells and lists it once per new cell")],
    head="classifier.1.weight"))

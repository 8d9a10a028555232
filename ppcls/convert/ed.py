"""ED-Net (megvii-research/ED-Net) official checkpoints -> ppcls ED models.

The ports reuse resnet.py's torchvision-named Bottleneck, so the official block names are
renamed; the ED and SE layers keep their official names (``encoder.encoder_conv``,
``decoder.decoder_bn``, ``fc_reduction``...). Nothing is dropped: the official forward uses the
projection twice but it is one module (``shortcut``), stored once.

    layer1.layer1_block_0.conv_conv1.weight        -> layer1.0.conv1.weight
    layer1.layer1_block_0.bn_bn3.running_var       -> layer1.0.bn3._variance (core)
    layer2.layer2_block_0.shortcut.shortcut_conv.* -> layer2.0.downsample.0.*
    layer2.layer2_block_0.shortcut.shortcut_bn.*   -> layer2.0.downsample.1.*
    layer1.layer1_block_0.fc_reduction.weight      -> layer1.0.se.fc_reduction.weight (transposed, core)
    layer1.layer1_block_0.encoder.encoder_conv.*   -> layer1.0.encoder.encoder_conv.*   (unchanged)

Only the released architectures have rules; the -A/-B variants have no official weights.
"""
from .core import Rules, register_rules

ED_RULES = Rules(
    rename=[
        (r"^layer(\d)\.layer\d_block_(\d+)\.", r"layer\1.\2."),
        (r"\.conv_conv(\d)\.", r".conv\1."),
        (r"\.bn_bn(\d)\.", r".bn\1."),
        (r"\.shortcut\.shortcut_conv\.", ".downsample.0."),
        (r"\.shortcut\.shortcut_bn\.", ".downsample.1."),
        (r"\.(fc_reduction|fc_extention)\.", r".se.\1."),
    ],
    head="fc.weight",
)

register_rules(r"ED_ResNet(50|101|152)|ED_ResNeXt(50|101)|ED_SE_ResNet50|ED_SE_ResNeXt50", ED_RULES)

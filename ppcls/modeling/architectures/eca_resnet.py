"""ECA-Net (Wang et al., CVPR 2020): ECA-ResNets and ECA-MobileNetV2, as BangguWu/ECANet builds them.

* ECA-ResNet = torchvision ResNet (resnet.py) with an ECA layer named ``eca`` after the last BN
  of every residual branch, before the add. Its kernel is fixed per stage (``k_size``, four
  values; the official ``--ksize 3557`` string is accepted too), not the adaptive formula.
* ECA-MobileNetV2 = MobileNetV2 (mobilenet_v2.py) with the ECA layer as the last child of each
  inverted residual's ``conv`` Sequential (after the projection BN), k = 1 for rows of the
  setting table with c < 96, else 3; classifier dropout 0.25. The official code scales channels
  with ``int(c * width_mult)`` (no rounding to 8) and picks k from the unscaled ``c``.
* Init as the official code: conv N(0, sqrt(2 / (k*k*out))), BN 1/0; the ECA Conv1d is left to
  PyTorch's default U(+-1/sqrt(k)) (the official loops only touch Conv2d), mirrored here.
"""
from ..registry import register_model
from .layers import ECA, init_eca_, parse_k_size  # noqa: F401  (re-exported)
from .mobilenet_v2 import MobileNetV2Net
from .resnet import BasicBlock, Bottleneck, ResNet


class ECAResNet(ResNet):
    """torchvision ResNet whose every block carries ``eca`` = ECA(k_size[stage]): resnet.py's
    ``attention="eca"`` with the released per-stage kernels."""

    def __init__(self, block, layers, k_size=(3, 3, 3, 3), class_dim=1000, **kw):
        if "attention" in kw:
            raise ValueError("ECA-ResNets always use ECA; 'attention' is a parameter of the "
                             "plain ResNets (ResNet18 ... ResNet152)")
        super().__init__(block, layers, class_dim=class_dim, attention="eca", k_size=k_size, **kw)


def eca_k_size(base_channels, k_size=(1, 3), threshold=96):
    """Official ECA-MobileNetV2 rule: k_size[0] when the row's unscaled c < 96, else k_size[1]."""
    return k_size[0] if base_channels < threshold else k_size[1]


class ECAMobileNetV2Net(MobileNetV2Net):
    """Official ``ECA_MobileNetV2``: ``k_size`` = (k for c < 96, k for c >= 96), or one int."""

    def __init__(self, class_dim=1000, width_mult=1.0, k_size=(1, 3), dropout=0.25, **kw):
        self.k_size = parse_k_size(k_size, 2)
        super().__init__(class_dim=class_dim, width_mult=width_mult, dropout=dropout, **kw)

    def scale_channels(self, channels, multiplier):
        return int(channels * multiplier)

    def block_kwargs(self, spec):
        return {"attn": ECA(spec.oup, k_size=eca_k_size(spec.base_channels, self.k_size))}

    def init_weights(self):
        super().init_weights()
        init_eca_(self)


@register_model(paper_top1=70.92, family="ECA-Net")
def ECA_ResNet18(class_dim=1000, k_size=(3, 5, 7, 7), **kw):
    return ECAResNet(BasicBlock, [2, 2, 2, 2], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=74.21, family="ECA-Net")
def ECA_ResNet34(class_dim=1000, k_size=(3, 3, 5, 7), **kw):
    return ECAResNet(BasicBlock, [3, 4, 6, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=77.42, family="ECA-Net")
def ECA_ResNet50(class_dim=1000, k_size=(3, 5, 5, 7), **kw):
    return ECAResNet(Bottleneck, [3, 4, 6, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=78.65, family="ECA-Net")
def ECA_ResNet101(class_dim=1000, k_size=(3, 3, 5, 7), **kw):
    return ECAResNet(Bottleneck, [3, 4, 23, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=78.92, family="ECA-Net")
def ECA_ResNet152(class_dim=1000, k_size=(3, 3, 5, 7), **kw):
    return ECAResNet(Bottleneck, [3, 8, 36, 3], k_size, class_dim=class_dim, **kw)


@register_model(paper_top1=72.56, family="ECA-Net")
def ECA_MobileNetV2(class_dim=1000, k_size=(1, 3), **kw):
    """kw: width_mult, dropout (0.25), inverted_residual_setting."""
    return ECAMobileNetV2Net(class_dim=class_dim, k_size=k_size, **kw)

"""Every model family; importing this package registers all of them."""
from . import dla, resnet, mobilenet_v2, eca_resnet, rla_net, ed_resnet, rexnet  # noqa: F401

"""paddle.hub entry points: one per registered model, named as the registry names it.

    import paddle
    paddle.hub.list("path/to/ppcls-repro", source="local")            # every model
    model = paddle.hub.load("path/to/ppcls-repro", "DLA60", source="local",
                            pretrained="pretrained/DLA60.pdparams")
    print(paddle.hub.help("path/to/ppcls-repro", "DLA60", source="local"))

Each entry is ``ppcls.build_model(name, pretrained=None, class_dim=None, **kwargs)``: the model
in eval mode; ``pretrained`` is a weights file (``.pdparams``, with or without the suffix, or
``.safetensors``), never a download; the class count comes from the weights unless
``class_dim`` is given. paddle.hub imports this file with the repository first on sys.path, so
the ``ppcls`` package next to it is the one used (unless another ppcls was imported before).
"""
import os as _os
import warnings as _warnings

import ppcls as _ppcls

dependencies = ["paddle", "numpy", "yaml"]

_HERE = _os.path.dirname(_os.path.realpath(__file__))
if _os.path.dirname(_os.path.realpath(_ppcls.__file__)) != _os.path.join(_HERE, "ppcls"):
    _warnings.warn(f"hubconf.py in {_HERE} uses the ppcls imported earlier from "
                   f"{_os.path.dirname(_ppcls.__file__)}", RuntimeWarning)


def _entry(name):
    def entry(pretrained=None, class_dim=None, **kwargs):
        return _ppcls.build_model(name, pretrained=pretrained, class_dim=class_dim, **kwargs)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{name}: ppcls.build_model({name!r}, pretrained=None, class_dim=None, **kwargs).\n\n"
        f"pretrained: a weights file (.pdparams, with or without the suffix, or .safetensors); "
        f"None: random initialisation. class_dim: None reads the class count from the weights "
        f"(1000 without weights); another count re-initialises the classifier. Returns the "
        f"model in eval mode.")
    return entry


for _name in _ppcls.list_models():
    globals()[_name] = _entry(_name)

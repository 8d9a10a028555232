"""One registry for every architecture: name -> factory.

Families register their public factories with ``@register_model``; the engine only ever asks
the registry, so it never needs to know a model by name.
"""
import difflib
import fnmatch

_MODELS = {}
_INFO = {}


def register_model(fn=None, **info):
    """Register a factory under its own name (``DLA60``); the name must be unique.

    Use bare (``@register_model``) or with facts for the model zoo table:
    ``@register_model(paper_top1=77.42, family="ECA-Net")``.
    """
    def deco(f):
        name = f.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice "
                             f"({_MODELS[name].__module__} and {f.__module__})")
        _MODELS[name] = f
        _INFO[name] = dict(info)
        return f
    return deco(fn) if fn is not None else deco


def model_info(name):
    """Facts registered with the model (``paper_top1``, ``family``...), possibly empty."""
    get_model_factory(name)
    return dict(_INFO[name])


def list_models(pattern="*"):
    """Sorted registered names matching a shell-style pattern (case-insensitive)."""
    pattern = pattern.lower()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n.lower(), pattern))


def get_model_factory(name):
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS.keys(), n=5, cutoff=0.4)
        lowered = [n for n in _MODELS if n.lower() == name.lower()]
        hint = lowered or close
        msg = f"unknown architecture {name!r}"
        msg += f"; did you mean {', '.join(hint)}?" if hint else \
            f"; see `python tools/paras_flops.py -a all` for the {len(_MODELS)} available names"
        raise KeyError(msg)
    return _MODELS[name]


def build_model(name, **kwargs):
    """Build a registered model: ``build_model("DLA60", class_dim=10)``."""
    return get_model_factory(name)(**kwargs)

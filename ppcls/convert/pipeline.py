"""The conversion a user asks for: read the naming, refuse what cannot transfer, convert.

``convert_checkpoint(arch, src, naming="auto")`` is what tools/convert_weights.py runs; every
refusal is one ConversionError line saying why (the tool prints it and exits 2).
"""
from . import paddleclas
from .core import ConversionError, convert_state_dict, match_to_model, normalise_source
from .naming import PADDLE_NAMINGS, PYTORCH_NAMINGS, detect_naming

NAMINGS = ("auto", "official", "timm", "paddleclas")


def resolve_arch(arch):
    """Our model name for ``-a arch`` (PaddleClas's ``ResNeXt101_32x8d_wsl`` is our
    ResNeXt101_32x8d); PaddleClas-only names are refused with the reason."""
    from ..modeling import get_model_factory
    arch = paddleclas.ALIASES.get(arch, arch)
    reason = paddleclas.refuse_arch(arch)
    if reason:
        raise ConversionError(reason)
    try:
        get_model_factory(arch)
    except KeyError as e:
        raise ConversionError(e.args[0]) from None
    return arch


def choose_naming(requested, detected, source):
    """The naming to convert with: the detected one for ``auto``; an explicit one must agree
    with the weights' layout (PyTorch vs Paddle), since the wrong one would mis-transpose."""
    if requested == "auto":
        return detected.kind
    if requested not in NAMINGS:
        raise ConversionError(f"unknown --from {requested!r}: use one of {', '.join(NAMINGS)}")
    if requested in PYTORCH_NAMINGS and detected.kind in PADDLE_NAMINGS:
        raise ConversionError(f"--from {requested}, but {source} has {detected.label}: "
                              f"use --from paddleclas (or auto)")
    if requested == "paddleclas" and detected.kind in PYTORCH_NAMINGS:
        raise ConversionError(f"--from paddleclas, but {source} has {detected.label}: "
                              f"use --from {detected.kind} (or auto)")
    if requested == "paddleclas" and detected.kind == "suite":
        return "suite"          # PaddleClas's DLA/ReXNet: our names already
    return "official" if requested == "timm" else requested


def convert_checkpoint(arch, src, naming="auto", class_dim=None, source="checkpoint", model=None):
    """``{name: array}`` in any supported naming -> (Paddle state dict, report).

    report: arch (our model), naming (kind), naming_label (detected, for the log),
    no_conversion_needed (the names were ours already: the file loads as is), class_dim,
    converted, dropped, and paddleclas_model (PaddleClas's name of the network, read from the
    weights) for PaddleClas ResNet/ResNeXt weights. ``model``: the model the weights will be
    loaded into (else one is built).
    """
    arch = resolve_arch(arch)
    src = normalise_source(src, source)
    detected = detect_naming(src)
    kind = choose_naming(naming, detected, source)
    report = {"naming": kind, "naming_label": detected.label, "no_conversion_needed": False}
    if kind == "suite":
        state, class_dim = _as_is(arch, src, class_dim, source, model)
        report.update(arch=arch, class_dim=class_dim, converted=len(state), dropped={},
                      no_conversion_needed=True)
        return state, report
    if kind == "paddleclas":        # refuses the networks that are not ours, from the weights
        report["paddleclas_model"] = paddleclas.check_transfer(arch, src, detected.label,
                                                                 source)
    naming_rules = "paddleclas" if kind == "paddleclas" else "official"
    state, rep = convert_state_dict(arch, src, class_dim, source=source, naming=naming_rules,
                                    model=model)
    report.update(rep)
    return state, report


def _as_is(arch, src, class_dim, source, model):
    """Weights already in our names: check that they fit ``arch`` and pass them through."""
    if model is None:
        from ..modeling import build_model
        if class_dim is None:
            class_dim = _class_dim_as_is(arch, src)
        model = build_model(arch, class_dim=class_dim)
    state = match_to_model(model, src, source, transpose_linear=False)
    return state, class_dim if class_dim is not None else _class_dim_as_is(arch, src)


def _class_dim_as_is(arch, src):
    from .core import rules_for
    try:
        head = rules_for(arch).head
    except ConversionError:
        head = "fc.weight"
    if head not in src:
        raise ConversionError(f"classifier weight {head!r} not found; is it a {arch} checkpoint?")
    shape = src[head].shape
    return int(shape[1] if len(shape) == 2 else shape[0])

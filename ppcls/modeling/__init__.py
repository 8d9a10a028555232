from .registry import build_model, get_model_factory, list_models, model_info, register_model  # noqa: F401
from . import architectures  # noqa: F401  (registers every family)

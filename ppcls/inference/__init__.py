"""Deployment: export (Paddle inference model + inference.yml + optional ONNX) and the predictor.

  python tools/export_model.py -c configs/DLA/DLA60.yaml -o pretrained_model=output/DLA60/best_model/ppcls
  python tools/infer.py --model_dir inference --image demo.jpg
"""
from .preprocess import InferenceError, default_ops, export_ops  # noqa: F401
from .export import export, export_recipe, export_weights, label_names_from_file  # noqa: F401
from .weights import load_model_for_export  # noqa: F401
from .predictor import Predictor, list_inputs, load_export  # noqa: F401

"""Model registry and architectures. ``get_model(name, num_classes, in_channels, pretrained)``."""
from models.init import CONV_INITS, DEFAULT_CONV_STD, apply_conv_init, conv_init_of
from models.registry import ModelConfig, check_input_size, get_model, list_models, register_model

# Importing the families registers their builders.
from models import lenet, mlp, torchvision_models  # noqa: F401  isort:skip

__all__ = ["CONV_INITS", "DEFAULT_CONV_STD", "apply_conv_init", "conv_init_of", "ModelConfig", "check_input_size", "get_model", "list_models", "register_model"]

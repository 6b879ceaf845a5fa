"""Model registry and architectures. ``get_model(name, num_classes, in_channels, pretrained)``."""
from models.init import CONV_INITS, DEFAULT_CONV_STD, apply_conv_init, conv_init_of
from models.registry import (
    MODEL_OPTIONS,
    ModelConfig,
    check_input_size,
    check_model_options,
    default_options,
    get_model,
    list_models,
    model_options,
    register_model,
)

# Importing the families registers their builders.
from models import convnet, lenet, mlp, torchvision_models  # noqa: F401  isort:skip

__all__ = ["CONV_INITS", "DEFAULT_CONV_STD", "apply_conv_init", "conv_init_of", "MODEL_OPTIONS", "ModelConfig",
           "check_input_size", "check_model_options", "default_options", "get_model", "list_models", "model_options", "register_model"]

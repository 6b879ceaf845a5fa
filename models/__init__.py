"""Model registry and architectures. ``get_model(name, num_classes, in_channels, pretrained)``."""
from models.registry import ModelConfig, check_input_size, get_model, list_models, register_model

# Importing the families registers their builders.
from models import lenet, mlp, torchvision_models  # noqa: E402,F401  isort:skip

__all__ = ["ModelConfig", "check_input_size", "get_model", "list_models", "register_model"]

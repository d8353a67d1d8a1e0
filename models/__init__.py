"""Models, built by name through the registry.

Importing this package registers every model module below.
"""

from models import airbench, plain_cnn, resnet, simple_cnn, unet  # noqa: F401  (registration)
from models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]

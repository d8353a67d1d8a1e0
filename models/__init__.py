"""Models, built by name: a registered model, an import path
('package.module:factory') or a torchvision model ('torchvision:resnet18').

Importing this package registers every model module below.
"""

from models import airbench, plain_cnn, resnet, simple_cnn, unet  # noqa: F401  (registration)
from models.registry import model_names, register_model
from models.resolve import build_model, check_model, model_keys

__all__ = ["build_model", "check_model", "model_keys", "model_names", "register_model"]

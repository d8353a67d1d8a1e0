"""Models, built by name: a registered model, an import path
('package.module:factory') or a torchvision model ('torchvision:resnet18').

Importing this package registers every model module below.
"""

from models import airbench, plain_cnn, resnet, simple_cnn, unet  # noqa: F401  (registration)
from models.activations import ACTIVATIONS, make_activation
from models.heads import head_layers
from models.registry import model_names, register_model
from models.resolve import SWEPT_KEYS, build_model, check_model, model_keys

__all__ = ["ACTIVATIONS", "SWEPT_KEYS", "build_model", "check_model", "head_layers",
           "make_activation", "model_keys", "model_names", "register_model"]

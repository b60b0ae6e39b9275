"""Model zoo (Flax Linen, NHWC): backbones, heads, and every experiment's model by name (``build_model``).

Each model family's module registers itself with :func:`register_model` when imported below.
"""

from ranking_jax.models import alexnet  # registers "alexnet_multilabel"
from ranking_jax.models.efficientnet import EfficientNetLite0
from ranking_jax.models.heads import ImageRegressor
from ranking_jax.models.heads import RegressionHead
from ranking_jax.models.heads import count_params
from ranking_jax.models.mobilenet import MobileNetV1
from ranking_jax.models.registry import BACKBONES
from ranking_jax.models.registry import MODELS
from ranking_jax.models.registry import build_model
from ranking_jax.models.registry import get_backbone
from ranking_jax.models.registry import make_model
from ranking_jax.models.registry import register_model
from ranking_jax.models.resnet import ResNet
from ranking_jax.models import sorter_model  # registers "sorter"
from ranking_jax.models.vgg import VGG
from ranking_jax.models.weights import from_torchvision
from ranking_jax.models.weights import load_efficientnet_lite0_imagenet
from ranking_jax.models.weights import load_backbone_weights
from ranking_jax.models.weights import save_backbone_weights

__all__ = [
    "BACKBONES", "EfficientNetLite0", "ImageRegressor", "MODELS", "MobileNetV1", "RegressionHead", "ResNet",
    "VGG", "build_model", "count_params", "register_model",
    "from_torchvision", "get_backbone", "load_backbone_weights", "load_efficientnet_lite0_imagenet",
    "make_model", "save_backbone_weights",
]

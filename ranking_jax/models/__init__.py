"""Model zoo (Flax Linen, NHWC): ResNet-18/34/50/101/152, VGG-16, MobileNet v1, regression heads, weights."""

from ranking_jax.models.heads import ImageRegressor
from ranking_jax.models.heads import RegressionHead
from ranking_jax.models.heads import count_params
from ranking_jax.models.mobilenet import MobileNetV1
from ranking_jax.models.registry import BACKBONES
from ranking_jax.models.registry import get_backbone
from ranking_jax.models.registry import make_model
from ranking_jax.models.resnet import ResNet
from ranking_jax.models.vgg import VGG
from ranking_jax.models.weights import from_torchvision
from ranking_jax.models.weights import load_backbone_weights
from ranking_jax.models.weights import save_backbone_weights

__all__ = [
    "BACKBONES", "ImageRegressor", "MobileNetV1", "RegressionHead", "ResNet", "VGG", "count_params",
    "from_torchvision", "get_backbone", "load_backbone_weights", "make_model", "save_backbone_weights",
]

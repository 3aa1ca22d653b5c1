"""CycleGAN fine-tuning: settings, data, image pool, losses and step, checkpoint, epoch loop."""

from mrct.training.loop import train_model
from mrct.training.settings import TrainSettings, settings_from_config

__all__ = ["TrainSettings", "settings_from_config", "train_model"]

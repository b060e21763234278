"""Data: bundled and on-disk datasets, preprocessing fitted on the training set, seeded
augmentation, and a DataLoader that prepares the next batch in a background thread::

    train, test = cnnkit.data.load_digits()          # [N, 1, 8, 8] float32 in [0, 1], int64 labels
    prep = cnnkit.data.ChannelMean(std=True).fit(train.images)
    loader = cnnkit.data.DataLoader(train, batch_size=64, shuffle=True, seed=0,
                                    transform=cnnkit.data.Compose([prep, RandomCrop(8, 1)]))
"""

from .datasets import (
                       CIFAR10_CLASSES,
                       ArrayDataset,
                       load_cifar10,
                       load_dataset,
                       load_digits,
                       load_mnist,
)
from .image_folder import FolderSplits, ImageFolder, load_image, load_image_folder
from .loader import DataLoader
from .preprocessing import ChannelMean, MeanImage, preprocessing_from_state
from .transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    PCALighting,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    five_crop,
    resize,
    ten_crop,
)

__all__ = [
    "ArrayDataset", "load_digits", "load_mnist", "load_cifar10", "load_dataset",
    "CIFAR10_CLASSES", "ImageFolder", "FolderSplits", "load_image_folder", "load_image",
    "DataLoader", "MeanImage", "ChannelMean", "preprocessing_from_state",
    "RandomCrop", "RandomHorizontalFlip", "CenterCrop", "Compose",
    "RandomResizedCrop", "ColorJitter", "PCALighting", "resize", "five_crop", "ten_crop",
]

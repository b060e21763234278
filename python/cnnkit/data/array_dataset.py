"""ArrayDataset: images and labels held in memory, what every loader of cnnkit.data returns."""

from __future__ import annotations

import numpy as np

__all__ = ["ArrayDataset"]


class ArrayDataset:
    """Images and labels held in memory.

    Parameters
    ----------
    images : array [N, C, H, W] (float32)
    labels : array [N] (int64)
    classes : sequence of str, optional
        Class names; by default "0", "1", ... up to the largest label.
    name : str
        What the data is (shown in messages and stored in checkpoints).
    """

    def __init__(self, images, labels, classes=None, name: str = ""):
        images = np.asarray(images, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be [N, C, H, W], got {list(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"ArrayDataset: {images.shape[0]} images but labels of shape "
                             f"{list(labels.shape)}")
        self.images, self.labels, self.name = images, labels, name
        n_classes = int(labels.max()) + 1 if labels.size else 0
        self.classes = tuple(classes) if classes is not None else tuple(
            str(i) for i in range(n_classes))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        """One sample ``(image [C, H, W], label)``, or a batch for an index array."""
        return self.images[index], self.labels[index]

    @property
    def image_shape(self) -> tuple:
        """[C, H, W] of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self):
        return (f"ArrayDataset({self.name or 'images'}: {len(self)} x {list(self.image_shape)}, "
                f"{self.num_classes} classes)")

"""From a folder of photos to a prediction: train on your own pictures, then classify new ones.

    python3 examples/own_images.py [FOLDER] [--epochs N]

FOLDER holds one subfolder per class (its name is the class name) of JPEG/PNG/BMP/WebP files,
optionally split into train/ val/ test/. Without FOLDER the script first draws a tiny folder of
synthetic pictures (stripes, checkerboards, discs, in random colours and sizes) so it runs
anywhere. The same path on the command line:

    cnnkit train --dataset folder:FOLDER --augment alexnet --epochs 20
    cnnkit predict runs/cifar_cnn-folder/best.safetensors new_photo.jpg --top 3
"""

import argparse
import os
import tempfile

import numpy as np

import cnnkit as ck
from cnnkit import data, models, optim, train

KINDS = ("stripes", "checks", "discs")


def draw(kind: str, rng) -> np.ndarray:
    """One synthetic RGB picture [H, W, 3] uint8 of a random size and colour pair."""
    h, w = rng.integers(40, 90, size=2)
    y, x = np.mgrid[0:h, 0:w]
    period = rng.integers(6, 14)
    if kind == "stripes":
        mask = (x + rng.integers(period)) // (period // 2) % 2 == 0
    elif kind == "checks":
        mask = ((x // period) + (y // period)) % 2 == 0
    else:
        cy, cx, r = h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7), min(h, w) / 4
        mask = (y - cy) ** 2 + (x - cx) ** 2 < r ** 2
    fg, bg = rng.integers(0, 256, size=(2, 3))
    img = np.where(mask[..., None], fg, bg) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(root: str, per_class: int = 60, seed: int = 0) -> str:
    """Write per_class JPEGs of each kind under root/KIND/; returns root."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for kind in KINDS:
        os.makedirs(os.path.join(root, kind), exist_ok=True)
        for i in range(per_class):
            Image.fromarray(draw(kind, rng)).save(os.path.join(root, kind, f"{i:03d}.jpg"))
    return root


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?")
    p.add_argument("--epochs", type=int, default=25)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="cnnkit-own-images-")
    folder = args.folder or make_folder(os.path.join(work, "pictures"))

    ck.manual_seed(0)
    train_set, test_set = data.load_image_folder(folder, size=32, seed=0)   # decoded once, cached
    print(f"{folder}: classes {', '.join(train_set.classes)}; {len(train_set)} train / "
          f"{len(test_set)} test images of {'x'.join(map(str, train_set.image_shape))}")
    prep = data.ChannelMean(std=True).fit(train_set.images)
    # AlexNet-style augmentation on the [0, 1] pictures, then the preprocessing
    augment = data.Compose([data.RandomResizedCrop(32, scale=(0.5, 1.0)),
                            data.RandomHorizontalFlip(), data.ColorJitter(0.2, 0.2, 0.2),
                            data.PCALighting(0.1).fit(train_set.images), prep])
    train_loader = data.DataLoader(train_set, 16, shuffle=True, seed=0, transform=augment)
    test_loader = data.DataLoader(test_set, 256, transform=prep)
    model = models.cifar_cnn(num_classes=train_set.num_classes)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    out = os.path.join(work, "run")
    train.fit(model, train_loader, test_loader, epochs=args.epochs, optimizer=opt,
              checkpoint_dir=out, preprocessing=prep, verbose=True, progress=False,
              metadata={"classes": list(train_set.classes),
                        "input_shape": list(train_set.image_shape)})
    print(f"test accuracy: {100 * train.evaluate(model, test_loader).accuracy:.1f}%")

    # predict: the checkpoint brings the model, its preprocessing and the class names
    best, prep2, ckpt = train.load_model(os.path.join(out, "best.safetensors"))
    classes = ckpt["metadata"]["classes"]
    files = [os.path.join(folder, c, sorted(os.listdir(os.path.join(folder, c)))[0])
             for c in train_set.classes if os.path.isdir(os.path.join(folder, c))]
    images = np.stack([data.load_image(f, 32) for f in files])
    with ck.no_grad():
        probs = ck.functional.softmax(best(ck.tensor(prep2(images))), dim=1).data
    for f, p in zip(files, probs):
        top = np.argsort(-p)[:2]
        print(f"{os.path.relpath(f, folder)}: " +
              ", ".join(f"{classes[i]} {100 * p[i]:.1f}%" for i in top))
    print(f"same with the command line: cnnkit predict {os.path.join(out, 'best.safetensors')} "
          f"{folder} --top 2")


if __name__ == "__main__":
    main()

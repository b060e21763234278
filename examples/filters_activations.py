"""What a CNN learned: first-layer filters and one image's activation maps, as PNG.

    python3 examples/filters_activations.py [OUT_DIR]   # writes filters.png, activations.png

Trains digits_cnn on the bundled 8x8 digits for a few epochs, then draws its first conv
layer's 32 filters (3x3, grey) with cnnkit.plot.plot_filters and the 32 maps of one test
image after the first conv + batch norm + ReLU with cnnkit.plot.plot_activations: edge and
stroke detectors light up along the digit's strokes.
"""

import os
import sys
import tempfile

import cnnkit as ck
from cnnkit import data, models, optim, plot, train

out_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="cnnkit-examples-")
ck.manual_seed(0)
ck.set_num_threads(1)
train_set, test_set = data.load_digits()
prep = data.ChannelMean(std=True).fit(train_set.images)
loader = data.DataLoader(train_set, batch_size=32, shuffle=True, seed=0, transform=prep)
model = models.digits_cnn()
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
train.fit(model, loader, epochs=4, optimizer=opt, progress=False)
result = train.evaluate(model, data.DataLoader(test_set, batch_size=360, transform=prep))
print(f"digits_cnn after 4 epochs: {100 * result.accuracy:.2f}% test accuracy")

conv1 = plot.first_conv(model)
print(f"first layer: weight {list(conv1.weight.shape)} ({conv1.weight.shape[0]} filters)")
image = prep(test_set.images[0])
print(f"test image 0: a {test_set.classes[test_set.labels[0]]}, input {list(image.shape)}")
print(f"wrote {plot.plot_filters(model, os.path.join(out_dir, 'filters.png'))}")
print(f"wrote {plot.plot_activations(model, image, os.path.join(out_dir, 'activations.png'))}")

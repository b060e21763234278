"""Model ensembles: train a few small CNNs with different seeds and average their predictions.

    python3 examples/ensemble.py

Three digits_cnn models (narrow, 3 epochs each, seeds 0, 1, 2) on scikit-learn's bundled 8x8
digits. cnnkit.ensemble.Ensemble averages their softmax probabilities; the ensemble is usually
better than its average member (the lecture: "ensembles: +2 %"; weak members gain more).
"""

import cnnkit as ck
from cnnkit import data, models, optim, train
from cnnkit.ensemble import Ensemble

ck.set_num_threads(1)  # tiny models: threads would only add overhead
train_set, test_set = data.load_digits()
prep = data.ChannelMean(std=True).fit(train_set.images)
test_loader = data.DataLoader(test_set, batch_size=360, transform=prep)

members = []
for seed in (0, 1, 2):
    ck.manual_seed(seed)  # a different initialisation and (below) data order per member
    loader = data.DataLoader(train_set, batch_size=32, shuffle=True, seed=seed,
                             transform=data.Compose([prep, data.RandomCrop(8, padding=1)]))
    model = models.digits_cnn(width=8)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    train.fit(model, loader, epochs=3, optimizer=opt, progress=False)
    members.append(model)

report = Ensemble(members).evaluate(test_loader)
for seed, acc in zip((0, 1, 2), report["members"]):
    print(f"member (seed {seed}): {100 * acc:.2f}% test accuracy")
mean = sum(report["members"]) / len(members)
print(f"mean of the members: {100 * mean:.2f}%")
print(f"ensemble (mean softmax of {len(members)}): {100 * report['ensemble']:.2f}% "
      f"({100 * (report['ensemble'] - mean):+.2f} points)")

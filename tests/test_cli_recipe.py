"""cnnkit train --recipe alexnet (issue 10): the paper's hyper-parameters, never a real AlexNet
training here (a dry run for AlexNet, one tiny epoch of digits_cnn with the recipe)."""

from cnnkit.cli import main


def test_alexnet_recipe_dry_run(capsys, tmp_path):
    assert main(["train", "--model", "alexnet", "--recipe", "alexnet", "--dry-run", "--quiet",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch 128, SGD lr 0.01 momentum 0.9 weight decay 0.0005, augmented (alexnet)" in out
    assert "optimizer: SGD(lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0005)" in out
    assert "ReduceLROnPlateau(mode='max', factor=0.1, patience=2) on val_acc" in out
    assert "dropout 0.5, 0.5" in out
    assert "augmentation: RandomResizedCrop, RandomHorizontalFlip, ColorJitter" in out
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_recipe_keeps_options_given(capsys):
    assert main(["train", "--recipe", "alexnet", "--lr", "0.1", "--batch-size", "16",
                 "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "digits_cnn" in out and "batch 16, SGD lr 0.1 momentum 0.9" in out


def test_recipe_trains_a_tiny_model(capsys, tmp_path):
    assert main(["train", "--recipe", "alexnet", "--epochs", "1", "--quiet", "--threads", "1",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "recipe alexnet" in out and "final test accuracy" in out
    assert (tmp_path / "last.safetensors").exists()

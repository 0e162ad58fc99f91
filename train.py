"""Train a model variant: `python train.py` (offline demo) or `python train.py -m model=resnet_contrastive,resnet_cos`."""

from prodmatch.cli import train

if __name__ == "__main__":
    train()

"""Train a model variant: `python train.py` (offline demo) or `python train.py -m model=resnet_contrastive,resnet_cos`."""

from prodmatch.train import main

if __name__ == "__main__":
    main()

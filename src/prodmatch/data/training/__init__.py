"""Training data from the database catalog: the DataModule, its samplers, augmentation, datasets and mining."""

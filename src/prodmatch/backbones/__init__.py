"""Image backbones: networks that turn an image batch into one feature row per image, chosen by config."""

"""prodmatch: product matching from images and text."""

__version__ = "0.1.0"

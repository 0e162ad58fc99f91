# The Hydra configs. This folder ships inside the wheel as the package `prodmatch.conf` (see pyproject.toml).

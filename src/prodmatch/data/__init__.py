"""The product cards: reading and validating catalogs, and the data training is made of.

Catalog I/O: ``schema.py`` (the study's columns and text views), ``validation.py`` (reading a CSV into counted,
logged row drops), ``catalog.py`` (:class:`~prodmatch.data.catalog.Catalog`, ``load_catalog``), ``images.py``
(robust decoding, image-path safety, transforms), ``source.py`` (the ``data`` config group: a run's two
catalogs), ``splits.py`` (the product split shared by training and scoring). ``synthetic/``: the demo catalog
generator. Training data: ``datamodule.py``, ``pairs.py``, ``datasets.py``, ``mining.py``. The decoded eval crops
(the pixel store) live with the image embedding that reads them, in :mod:`prodmatch.encoders.pixels`.
"""

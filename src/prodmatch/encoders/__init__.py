"""Encoders: texts or image paths in, an ``EncodeResult`` out: L2-normalised float32 vectors and what the call met
(the protocol is in ``base.py``).

``image_embedder.py`` image embeddings of any network (batching, decoding in workers, the pixel store of
``pixels.py``, one batch in flight); ``image.py`` the configured ResNet18 encoder over it; ``color_hist.py`` the
foreground colour histogram (the hand-crafted image baseline); ``text.py`` sentence-transformers text embeddings;
``tfidf.py`` TF-IDF; ``sentence.py`` loading a sentence-transformers model (hub id or dir); ``local_text.py`` the
tiny BERT built locally when ``pretrained=false``; ``device.py`` device choice; ``cache.py`` the on-disk
embedding cache; ``registry.py`` encoders by name from the ``encoders`` config group.
"""

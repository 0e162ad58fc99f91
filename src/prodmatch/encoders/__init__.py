"""Encoders: texts or image paths in, L2-normalised float32 vectors out (the protocol is in ``base.py``).

``image.py`` ResNet18 image embeddings; ``text.py`` sentence-transformers text embeddings; ``tfidf.py`` TF-IDF;
``sentence.py`` loading a sentence-transformers model (hub id or dir); ``local_text.py`` the tiny BERT built
locally when ``pretrained=false``; ``device.py`` device choice; ``cache.py`` the
on-disk embedding cache; ``registry.py`` encoders by name from the ``encoders`` config group.
"""

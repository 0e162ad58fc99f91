"""Embedding large catalogs over several processes (GPUs, nodes): memory-mapped shards merged in input order.

``shards.py`` the shard files, the row split and the merge; ``batches.py`` one batch of an encoder's inputs
embedded at a time; ``predict.py`` Lightning's predict loop writing the shards (:func:`embed_with_trainer`);
``encoders.py`` the pipeline's encoders that embed this way (``embed_trainer=`` in evaluate.py, the retrieval
callback under DDP).
"""

"""Search on Milvus, through ``pymilvus``: embedded Milvus Lite (a local ``.db`` path) or a Milvus server.

``uri`` picks the engine: a local path ending in ``.db`` runs Milvus Lite inside this process (``pip install
'prodmatch[milvus]'``); ``http://host:19530`` (or ``https://``, ``tcp://``) talks to a Milvus standalone or
cluster (docs/SCALING.md shows how to start one). The database becomes one collection (``id`` = the row's
position, ``vector`` = the L2-normalised row) with a vector index (HNSW by default) and the COSINE metric, so
scores are cosine similarities like every other backend's.

Collections are named after the run (``prodmatch_<run>_<digest>_<random>``), so concurrent runs, and the ranks of
one distributed run, never share one; the collection is dropped when the index is closed or garbage collected,
unless ``keep=True`` or :meth:`MilvusIndex.save` recorded it. A server that cannot be reached, or that refuses a
request, is one :class:`~prodmatch.errors.SearchServerError` line naming the URI, after at most ``timeout_s``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.errors import ConfigError, SearchServerError, one_line
from prodmatch.layout import MILVUS_LITE_FILE
from prodmatch.retrieval.index.base import PAD_ID, PAD_SCORE, as_matrix, check_k, positive_int
from prodmatch.retrieval.index.faiss import ivfflat_lists
from prodmatch.utils.atomic import write_json
from prodmatch.utils.vectors import l2_normalize

log = logging.getLogger("prodmatch.retrieval")

SERVER_SCHEMES = ("http://", "https://", "tcp://")
# The index types that keep the full vectors (their scores are exact cosines, not quantised ones), each with the
# build and search parameters it takes: the config holds all of them, each index gets its own.
KNOBS = {
    "HNSW": ({"M", "efConstruction"}, {"ef"}),
    "IVF_FLAT": ({"nlist"}, {"nprobe"}),
    "FLAT": (set(), set()),
}
INDEX_TYPES = tuple(KNOBS)
_MESSAGE_BYTES = 16 * 2**20  # vectors per insert / search request: well within gRPC's default message limit
_NAME_LEN = 200  # Milvus allows 255 characters in a collection name


def import_pymilvus():
    """The pymilvus module, or one ConfigError line naming the extra to install."""
    try:
        import pymilvus
    except ImportError as err:
        raise ConfigError(
            "retrieval/index=milvus needs pymilvus; pip install 'prodmatch[milvus]' (pymilvus + milvus-lite), "
            "or pick retrieval/index=annoy, exact or faiss_*"
        ) from err
    return pymilvus


def is_server(uri: str) -> bool:
    return uri.lower().startswith(SERVER_SCHEMES)


def process_rank() -> int:
    """This process's rank in a distributed run (0 outside one): torch.distributed's, else the launcher's."""
    dist = sys.modules.get("torch.distributed")  # only when torch is already loaded: no import cost here
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for key in ("RANK", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def local_uri(uri: str) -> str:
    """The Milvus Lite file this process opens: absolute, its folder made; rank r > 0 of a distributed run
    gets ``<name>.rank<r>.db`` (Milvus Lite lets one process hold a file)."""
    path = Path(uri).expanduser().resolve()
    if (rank := process_rank()) > 0:
        path = path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def collection_name(run: str | None, prefix: str = "prodmatch") -> str:
    """``<prefix>_<run tag>_<run digest>_<random>``: readable, the run's, and unique to this index."""
    run = run or f"pid{os.getpid()}"
    tag = re.sub(r"[^0-9A-Za-z]+", "_", Path(run).name or run).strip("_")[:48]
    digest = hashlib.sha1(run.encode()).hexdigest()[:8]
    name = "_".join(part for part in (prefix, tag, digest, uuid.uuid4().hex[:8]) if part)
    return name[:_NAME_LEN]


def _release(state: dict[str, Any], at_exit: bool = False) -> None:
    """Drop the collection (unless kept) and close the client; runs once, by close(), the garbage collector or
    at exit. At exit Milvus Lite has already stopped its in-process server: the collection stays in its file."""
    client, name = state.pop("client", None), state.get("collection")
    if client is None:
        return
    drop = name and not state.get("keep") and not (at_exit and not is_server(state["uri"]))
    try:
        if drop and client.has_collection(name):
            client.drop_collection(name)
    except Exception as err:  # the server went away: say what is left behind
        log.warning(
            "could not drop Milvus collection %s at %s (%s); drop it by hand",
            name,
            state["uri"],
            one_line(err),
        )
    finally:
        with contextlib.suppress(Exception):  # closing a dead connection must not mask the run's own result
            client.close()


class MilvusIndex:
    """Cosine search on a Milvus collection (Milvus Lite for a local ``.db`` path, a server for a URL).

    ``index_type`` (HNSW, IVF_FLAT or FLAT) with ``index_params`` (HNSW: M, efConstruction; IVF_FLAT: nlist, by
    default IVF-Flat's 4 sqrt(N)) is built on the collection; ``search_params`` (HNSW: ef, at least k; IVF_FLAT:
    nprobe) are sent with every search. Both may hold every type's parameters: each index takes its own.
    ``collection=None`` names the collection after ``run`` (see :func:`collection_name`); a given name is used
    as is and replaced when it exists. ``token`` is ``user:password`` or an API key for a server with
    authentication. ``shards`` / ``replicas`` (a cluster's collection shards and in-memory replicas) are left
    to the server when null. Connecting and quick calls wait at most ``timeout_s``.
    """

    def __init__(
        self,
        uri: str = MILVUS_LITE_FILE,
        collection: str | None = None,
        run: str | None = None,
        index_type: str = "HNSW",
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        token: str | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        timeout_s: float = 10.0,
        keep: bool = False,
    ) -> None:
        uri = str(uri)
        if not is_server(uri) and not uri.endswith(".db"):
            raise ConfigError(
                f"retrieval.index.uri={uri!r}: give a local file ending in .db (Milvus Lite) or a server URL "
                "such as http://localhost:19530"
            )
        if index_type not in INDEX_TYPES:
            raise ConfigError(
                f"retrieval.index.index_type={index_type!r} is not one of {', '.join(INDEX_TYPES)}"
            )
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ConfigError(f"retrieval.index.timeout_s={timeout_s!r} must be a positive number of seconds")
        self.uri = uri
        self.collection = collection
        self.run = None if run is None else str(run)
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self.token = token
        self.shards = None if shards is None else positive_int(shards, "retrieval.index.shards")
        self.replicas = None if replicas is None else positive_int(replicas, "retrieval.index.replicas")
        self.timeout_s = float(timeout_s)
        self.keep = bool(keep)
        self._pymilvus = import_pymilvus()
        if not is_server(uri) and importlib.util.find_spec("milvus_lite") is None:
            raise ConfigError(
                f"retrieval.index.uri={uri!r} is a local file, which needs Milvus Lite; pip install "
                "'prodmatch[milvus]' (or give a Milvus server URL)"
            )
        self._state: dict[str, Any] = {"uri": uri, "keep": self.keep}
        self._finalizer = weakref.finalize(self, _release, self._state)
        self._finalizer.atexit = False  # the exit hook below says that it runs at exit
        atexit.register(_release, self._state, True)
        self._dim: int | None = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def collection_name(self) -> str | None:
        """The collection this index searches (None before build or load)."""
        return self._state.get("collection")

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the collection (unless kept or saved) and close the connection; later calls do nothing."""
        self._finalizer()

    def _server_error(self, err: Exception, doing: str) -> SearchServerError:
        where = f"Milvus at {self.uri}"
        hint = (
            "check that the server is running and reachable (docs/SCALING.md: Milvus standalone)"
            if is_server(self.uri)
            else "Milvus Lite lets one process hold a .db file: give each concurrent run its own uri"
        )
        message = getattr(err, "message", None)  # pymilvus keeps the server's own words there
        reason = one_line(RuntimeError(message) if message else err)
        return SearchServerError(f"{where}: {doing} failed ({reason}); {hint}")

    def _client(self):
        """The open client, connecting on first use (one error line when the server cannot be reached)."""
        if self._state.get("client") is None:
            uri = self.uri if is_server(self.uri) else local_uri(self.uri)
            try:
                client = self._pymilvus.MilvusClient(uri=uri, token=self.token or "", timeout=self.timeout_s)
            except Exception as err:
                raise self._server_error(err, "connecting") from err
            self._state["client"] = client
        return self._state["client"]

    def _call(self, doing: str, method: str, *args: Any, quick: bool = True, **kwargs: Any) -> Any:
        """One client call; a server error becomes one line naming the URI. Quick calls wait at most
        ``timeout_s``; the long ones (insert, flush, index build, load, search) as long as the server works."""
        client = self._client()
        try:
            return getattr(client, method)(*args, timeout=self.timeout_s if quick else None, **kwargs)
        except Exception as err:
            raise self._server_error(err, doing) from err

    def _schema(self, dim: int):
        milvus = self._pymilvus
        schema = milvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", milvus.DataType.INT64, is_primary=True)
        schema.add_field("vector", milvus.DataType.FLOAT_VECTOR, dim=dim)
        return schema

    def _rows_per_request(self, dim: int) -> int:
        return max(1, _MESSAGE_BYTES // (4 * dim))

    def build(self, vectors: np.ndarray) -> MilvusIndex:
        """Create the collection, insert the normalised rows (ids = positions), build the index and load it."""
        db = l2_normalize(as_matrix(vectors, "database vectors"))
        name = self._state.get("collection")
        if name is not None and not self._state.get("keep"):
            self._call("dropping the previous collection", "drop_collection", name)
        name = self.collection or collection_name(self.run)
        self._state["collection"] = name
        if self.collection and self._call("looking up the collection", "has_collection", name):
            self._call("replacing the collection", "drop_collection", name)
        extra = {} if self.shards is None else {"num_shards": self.shards}
        self._call(
            "creating the collection", "create_collection", name, schema=self._schema(db.shape[1]),
            consistency_level="Strong", **extra,
        )  # fmt: skip
        step = self._rows_per_request(db.shape[1])
        for start in range(0, db.shape[0], step):
            rows = [{"id": start + i, "vector": row} for i, row in enumerate(db[start : start + step])]
            self._call("inserting vectors", "insert", name, rows, quick=False)
        self._call("flushing the collection", "flush", name, quick=False)
        params = self._client().prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type=self.index_type,
            metric_type="COSINE",
            params=self._index_params(db.shape[0]),
        )
        # not pymilvus's own wait: it asks for a timestamp that Milvus Lite does not serve (a logged error)
        self._call("building the index", "create_index", name, params, quick=False, sync=False)
        self._wait_for_index(name, db.shape[0])
        extra = {} if self.replicas is None else {"replica_number": self.replicas}
        self._call("loading the collection", "load_collection", name, quick=False, **extra)
        self._dim, self._n = int(db.shape[1]), int(db.shape[0])
        log.info("milvus: %d vectors in collection %s at %s (%s)", self._n, name, self.uri, self.index_type)
        return self

    def _own(self, params: Mapping[str, Any], which: int) -> dict[str, Any]:
        """``params`` less the known parameters of the other index types (and unset ones)."""
        others = (
            set().union(*(KNOBS[t][which] for t in KNOBS if t != self.index_type))
            - KNOBS[self.index_type][which]
        )
        return {key: value for key, value in params.items() if key not in others and value is not None}

    def _index_params(self, n: int) -> dict[str, Any]:
        """The index's build parameters; IVF_FLAT without ``nlist`` gets IVF-Flat's default for ``n`` rows."""
        params = self._own(self.index_params, 0)
        if self.index_type == "IVF_FLAT" and "nlist" not in params:
            params["nlist"] = ivfflat_lists(n)
        if params and not is_server(self.uri):
            # pymilvus sends build parameters as flat keys, which Milvus Lite ignores: it reads them nested
            params["params"] = dict(params)
        return params

    def _wait_for_index(self, name: str, n: int) -> None:
        """Poll until the server has indexed all ``n`` rows (a failed build is one error line)."""
        while True:
            info = self._call("building the index", "describe_index", name, "vector")
            state = str(info.get("state", "Finished"))
            if state == "Failed":
                reason = info.get("index_state_fail_reason") or "no reason given"
                raise SearchServerError(f"Milvus at {self.uri}: building the index failed ({reason})")
            if state == "Finished" and int(info.get("indexed_rows", n)) >= n:
                return
            time.sleep(0.1)

    def _params(self, k: int) -> dict[str, Any]:
        params = self._own(self.search_params, 1)
        if self.index_type == "HNSW":  # HNSW returns at most ef results
            params["ef"] = max(int(params.get("ef", k)), k)
        return {"metric_type": "COSINE", "params": params}

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded with -1 / -inf."""
        if self._state.get("collection") is None or self._dim is None:
            raise RuntimeError("the index is empty; call build(vectors) or load(path) first")
        k = check_k(k)
        q = l2_normalize(as_matrix(queries, "query vectors", dim=self._dim))
        ids = np.full((q.shape[0], k), PAD_ID, dtype=np.int64)
        scores = np.full((q.shape[0], k), PAD_SCORE, dtype=np.float32)
        name, params, step = self._state["collection"], self._params(k), self._rows_per_request(self._dim)
        for start in range(0, q.shape[0], step):
            hits = self._call(
                "searching", "search", name, data=q[start : start + step], limit=min(k, self._n),
                search_params=params, output_fields=["id"], quick=False,
            )  # fmt: skip
            for row, found in enumerate(hits, start):
                n = min(len(found), k)
                ids[row, :n] = [hit["id"] for hit in found[:n]]
                scores[row, :n] = [hit["distance"] for hit in found[:n]]
        return ids, scores

    # Persistence: the vectors stay in the collection; the file names where it is. Removable as one unit.
    def save(self, path: str | Path) -> None:
        """Keep the collection and write ``path`` (JSON: uri, collection, dimension, index settings)."""
        if self._state.get("collection") is None or self._dim is None:
            raise RuntimeError("the index is empty; call build(vectors) before save(path)")
        self._state["keep"] = self.keep = True
        uri = self.uri if is_server(self.uri) else local_uri(self.uri)
        meta = {"backend": "milvus", "uri": uri, "collection": self._state["collection"], "dim": self._dim}
        meta |= {"n_items": self._n, "index_type": self.index_type, "index_params": self.index_params}
        meta |= {"search_params": self.search_params, "shards": self.shards, "replicas": self.replicas}
        write_json(path, meta)

    @classmethod
    def load(cls, path: str | Path, token: str | None = None, timeout_s: float = 10.0) -> MilvusIndex:
        """Reopen a saved collection (kept: closing the loaded index does not drop it)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"milvus index file {path} not found; build and save the index first or fix the path"
            )
        meta = json.loads(path.read_text())
        index = cls(
            uri=meta["uri"], collection=meta["collection"], index_type=meta["index_type"],
            index_params=meta["index_params"], search_params=meta["search_params"], token=token,
            shards=meta.get("shards"), replicas=meta.get("replicas"), timeout_s=timeout_s, keep=True,
        )  # fmt: skip
        name = meta["collection"]
        index._state["collection"] = name
        if not index._call("looking up the collection", "has_collection", name):
            raise ConfigError(
                f"milvus collection {name} named by {path} is not at {meta['uri']}; build and save it again"
            )
        index._call("loading the collection", "load_collection", name, quick=False)
        index._dim, index._n = int(meta["dim"]), int(meta["n_items"])
        return index

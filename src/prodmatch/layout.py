"""The run layout and the metric keys: every name a run writes, in one place (the artifact contract in code).

Files and folders of a run dir (``logs/<task>/runs/<timestamp>_<token>/`` or a sweep job's dir), of a sweep dir
and of the cache dir (``paths.cache_dir``), and the builders of the flat metric keys of ``metrics.json``::

    <stage><group><family><name>      e.g.  before_fit/retrieval/acc@10,  seen/match/f1,  retrieval/acc@10/<target>

``stage`` is "" (the final figures), :data:`BEFORE_FIT` or :data:`EPOCH` (the training callback's evaluations);
``group`` is "" (all query cards, or the product protocol's unseen products) or :data:`SEEN`; ``family`` is
:data:`RETRIEVAL`, :data:`MATCH`, :data:`DATA`, :data:`SPLIT` or :data:`FUSION_WEIGHT`. Every module that
writes or reads these names imports them from here; the README's artifact contract is checked against this
module by ``tests/unit/test_layout.py``. Imports nothing.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------- a run dir
METRICS_FILE = "metrics.json"  # flat final metrics (contract)
MATCHES_FILE = "matches.csv"  # one row per (query, rank) (contract)
RESULT_DIR = "result"  # the saved RetrievalResult (contract)
RESULT_META_FILE = "result.json"  # inside RESULT_DIR: everything but the arrays
STATUS_FILE = "job_status.json"  # ok | failed | interrupted, the error line, the wall time
DONE_FILE = "done.json"  # the fingerprints a `resume=true` rerun compares
INIT_FILE = "initialised_from.json"  # a fit started from another run's checkpoint: which one, its weights
CHECKPOINTS_DIR = "checkpoints"  # training runs' Lightning checkpoints
LAST_CHECKPOINT_FILE = "last.ckpt"  # inside CHECKPOINTS_DIR
HYDRA_DIR = ".hydra"  # Hydra's record of the config and overrides
HYDRA_OVERRIDES_FILE = "overrides.yaml"  # inside HYDRA_DIR
HYDRA_CONFIG_FILE = "config.yaml"  # inside HYDRA_DIR
HYDRA_RUNTIME_FILE = "hydra.yaml"  # inside HYDRA_DIR
CSV_LOG_DIR = "csv"  # the CSV logger's folder (its metrics.csv)
WANDB_DIR = "wandb"  # the offline W&B run
WANDB_ID_FILE = "wandb_run_id"  # the run dir's W&B run id (a resumed job continues its W&B run)
EMBEDDINGS_DIR = "embeddings"  # `embed_trainer=`: the merged matrices, embeddings/<encoder>/<call>/
SHARDS_DIR = "embed_shards"  # the training callback's shards while a DDP evaluation runs (removed after)
THROUGHPUT_FILE = "throughput.json"  # the throughput callback's summary
MILVUS_LITE_FILE = (
    "milvus.db"  # retrieval/index=milvus: Milvus Lite's database (rank r > 0: milvus.rank<r>.db)
)

# The names every run dir holds (README "Run artifacts"); training runs add CHECKPOINTS_DIR.
CONTRACT_FILES = (METRICS_FILE, MATCHES_FILE, RESULT_DIR, HYDRA_DIR, STATUS_FILE, DONE_FILE)

# ---------------------------------------------------------------------------------------- a sweep dir
BEST_TRIAL_FILE = "best_trial.yaml"  # the best trial of a hyper-parameter search
OPTUNA_RESULTS_FILE = "optimization_results.yaml"  # written by Hydra's Optuna sweeper

# ---------------------------------------------------------------------------------------- the cache dir
EMBEDDING_CACHE_DIR = "embeddings"  # cached embeddings (encoders/cache.py)
PIXEL_CACHE_DIR = "pixels"  # decoded eval crops (encoders/pixels.py)
TEXT_MODEL_CACHE_DIR = "text_models"  # locally built text models (encoders/local_text.py)

# ---------------------------------------------------------------------------------------- metric keys
RETRIEVAL = "retrieval/"
MATCH = "match/"
DATA = "data/"
SPLIT = "split/"
FUSION_WEIGHT = "fusion/weight/"
THROUGHPUT = "throughput/"
BEFORE_FIT = "before_fit/"  # stage: the training callback's evaluation before the first step
EPOCH = "epoch/"  # stage: the training callback's periodic evaluations
SEEN = "seen/"  # group: the product protocol's train and val products
STAGES = ("", BEFORE_FIT, EPOCH)
ANN_RECALL_SAMPLE = "ann_recall_sample"  # queries the ANN recall was measured on
WALL_KEY = "job/wall_s"  # a job's wall time, as the reports show it (read from STATUS_FILE)


def acc_name(k: int, target: str | None = None) -> str:
    """``acc@<k>``, or ``acc@<k>/<target>`` for one query target."""
    return f"acc@{k}" if target is None else f"acc@{k}/{target}"


def ann_recall_name(k: int) -> str:
    """``ann_recall@<k>``: the index's top-k overlap with exact search (its sample size is
    :data:`ANN_RECALL_SAMPLE`)."""
    return f"ann_recall@{k}"


def retrieval_prefix(stage: str = "", group: str = "") -> str:
    """``<stage><group>retrieval/``: what the retrieval measures' names follow."""
    return f"{stage}{group}{RETRIEVAL}"


def match_prefix(stage: str = "", group: str = "") -> str:
    """``<stage><group>match/``: what the thresholded match measures' names follow."""
    return f"{stage}{group}{MATCH}"


def retrieval_key(name: str, stage: str = "", group: str = "") -> str:
    """``<stage><group>retrieval/<name>``, e.g. ``retrieval_key("sku_mrr", SEEN)`` is ``seen/retrieval/sku_mrr``."""
    return retrieval_prefix(stage, group) + name


def acc_key(k: int, target: str | None = None, stage: str = "", group: str = "") -> str:
    """``<stage><group>retrieval/acc@<k>[/<target>]``: the study's Acc@k, overall or for one query target."""
    return retrieval_key(acc_name(k, target), stage, group)


def match_key(name: str, stage: str = "", group: str = "") -> str:
    """``<stage><group>match/<name>`` (precision, recall, f1, threshold)."""
    return match_prefix(stage, group) + name


def data_key(name: str, stage: str = "") -> str:
    """``<stage>data/<name>``, e.g. ``data/dropped/unreadable_image``."""
    return f"{stage}{DATA}{name}"


def split_key(group: str, stage: str = "") -> str:
    """``<stage>split/<group>``: the query cards of one product group."""
    return f"{stage}{SPLIT}{group}"


def fusion_weight_key(label: str, stage: str = "") -> str:
    """``<stage>fusion/weight/<channel label>``: a concat weight chosen on the validation products."""
    return f"{stage}{FUSION_WEIGHT}{label}"


def stage_of(key: str) -> tuple[str, str]:
    """(stage, the rest) of a metric key: ``("before_fit/", "retrieval/acc@10")``; ``("", key)`` for a final one."""
    for stage in STAGES[1:]:
        if key.startswith(stage):
            return stage, key[len(stage) :]
    return "", key


def is_breakdown(key: str) -> bool:
    """Whether a key (of any stage) is a breakdown rather than a headline figure one level under its family
    (``retrieval/acc@10``, ``match/f1``, ``split/test``): per target (``retrieval/acc@10/<target>``), per reason
    (``data/dropped/<reason>``), per channel (``fusion/weight/<label>``) or per product group (``seen/...``)."""
    return stage_of(key)[1].count("/") > 1

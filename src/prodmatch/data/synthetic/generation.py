"""Planning the cards, writing CSVs and images, and generating a catalog folder safely."""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prodmatch.data.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from prodmatch.data.synthetic import hard
from prodmatch.data.synthetic.drawing import render
from prodmatch.data.synthetic.sampling import normalized, spread
from prodmatch.data.synthetic.skus import Sku, build_skus
from prodmatch.data.synthetic.tables import (
    CATEGORIES,
    CATEGORY,
    DEALERS,
    QUERY_DEALER,
    QUERY_TARGETS,
    SCALES,
    Dealer,
    Scale,
)
from prodmatch.data.synthetic.text import card_caracteristics, card_categories, card_price, card_title
from prodmatch.errors import CatalogError, ConfigError
from prodmatch.utils.locks import file_lock

GENERATOR_VERSION = 2
MARKER = ".synthetic.json"
CSV_NAMES = ("company_data.csv", "comparable_data.csv")  # (queries, database)
# Files that do not make a folder "hold something" (a version-control placeholder, a desktop's index).
PLACEHOLDERS = frozenset({".gitkeep", ".DS_Store"})
COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)  # the study's schema + sku


# ---------------------------------------------------------------------------------------------- assembly


def _sku_counts(scale: Scale) -> tuple[dict[str, int], dict[str, int]]:
    """(query SKUs per target, further database-only SKUs per target)."""
    qw = normalized([c.query_weight for c in CATEGORIES if c.query_weight > 0])
    q = dict(zip(QUERY_TARGETS, _largest_remainder(qw, scale.n_queries), strict=True))
    mean_q, mean_other = float(np.dot(_LISTINGS_Q[0], _LISTINGS_Q[1])), float(np.dot(*_LISTINGS_OTHER))
    rest = max(len(CATEGORIES), int(round((scale.n_database - scale.n_queries * mean_q) / mean_other)))
    other = dict(
        zip(
            [c.target for c in CATEGORIES],
            _largest_remainder(normalized([c.db_weight for c in CATEGORIES]), rest),
            strict=True,
        )
    )
    return q, other


_LISTINGS_Q = (np.array([2, 3, 4, 5]), np.array([0.35, 0.3, 0.2, 0.15]))  # shops per query SKU
_LISTINGS_OTHER = (np.array([1, 2, 3, 4, 5]), np.array([0.35, 0.25, 0.2, 0.12, 0.08]))


def _largest_remainder(w: np.ndarray, n: int) -> list[int]:
    raw = w * n
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: n - int(out.sum())]:
        out[i] += 1
    return [int(v) for v in out]


def _plan(seed: int, scale: Scale) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Sku]]:
    """Cards (text columns + image plan) of the company and the database."""
    rng = np.random.default_rng([seed, 0])
    q_counts, other_counts = _sku_counts(scale)
    totals = {t: q_counts.get(t, 0) + other_counts[t] for t in CATEGORY}
    skus = build_skus(rng, totals)
    by_target: dict[str, list[Sku]] = {}
    for s in skus:
        by_target.setdefault(s.target, []).append(s)
    query_ids: set[str] = set()
    for t, n in q_counts.items():
        chosen = rng.choice(len(by_target[t]), size=n, replace=False)
        query_ids.update(by_target[t][int(i)].sku for i in chosen)

    sportdoma = next(d for d in DEALERS if d.name == QUERY_DEALER)
    company: list[dict[str, Any]] = []
    database: list[dict[str, Any]] = []
    for s in skus:
        shops = [d for d in DEALERS if d.name != QUERY_DEALER and (not d.sells or s.target in d.sells)]
        counts, probs = _LISTINGS_Q if s.sku in query_ids else _LISTINGS_OTHER
        n = min(len(shops), int(rng.choice(counts, p=probs)))
        picked = rng.choice(len(shops), size=n, replace=False, p=normalized([d.weight for d in shops]))
        seen: set[str] = set()
        if s.sku in query_ids:
            company.append(_card(rng, sportdoma, s, seen))
        database.extend(_card(rng, shops[int(i)], s, seen) for i in sorted(picked))
    order = {c.target: i for i, c in enumerate(CATEGORIES)}
    company = _finish(rng, company, order)
    database = _finish(rng, database, order)
    return company, database, skus


def _card(rng: np.random.Generator, dealer: Dealer, sku: Sku, seen: set[str]) -> dict[str, Any]:
    """One shop's card of a SKU; `seen` holds the SKU's titles so far (shops word the same model differently)."""
    # a vague card names no category in its title nor in its category levels
    vague = dealer.name != QUERY_DEALER and rng.random() < dealer.vague
    title = card_title(rng, dealer, sku, vague)
    for _ in range(8):
        if title not in seen:
            break
        title = card_title(rng, dealer, sku, vague)
    seen.add(title)
    cat_1, cat_2, cat_3 = card_categories(rng, dealer, sku, vague)
    return {
        "title": title,
        "price": card_price(rng, dealer, sku),
        "cat_1": cat_1,
        "cat_2": cat_2,
        "cat_3": cat_3,
        "caracteristics": card_caracteristics(rng, dealer, sku),
        "target": sku.target,
        "dealer": dealer.name,
        "sku": sku.sku,
        "_sku": sku,
        "_dealer": dealer,
    }


def _finish(
    rng: np.random.Generator, cards: list[dict[str, Any]], order: dict[str, int]
) -> list[dict[str, Any]]:
    """Order cards by target then dealer (shuffled within), assign file names, formats and modes."""
    keys = rng.random(len(cards))
    idx = sorted(range(len(cards)), key=lambda i: (order[cards[i]["target"]], cards[i]["dealer"], keys[i]))
    cards = [cards[i] for i in idx]
    by_dealer: dict[str, list[int]] = {}
    for i, c in enumerate(cards):
        by_dealer.setdefault(c["dealer"], []).append(i)
    for name in sorted(by_dealer):
        rows = by_dealer[name]
        dealer = cards[rows[0]]["_dealer"]
        labels = spread(rng, len(rows), [w for _, _, w in dealer.formats])
        product_ids = rng.choice(np.arange(10000, 30000), size=len(rows), replace=False)
        counter: dict[str, int] = {}
        for row, label, pid in zip(rows, labels, product_ids, strict=True):
            card = cards[row]
            fmt, mode, _ = dealer.formats[int(label)]
            ext = {"JPEG": dealer.ext_jpeg, "PNG": "png", "WEBP": "webp"}[fmt]
            counter[card["target"]] = counter.get(card["target"], 0) + 1
            card["img_ref"] = f"images/{card['target']}/{counter[card['target']]}_{name}_{int(pid)}.{ext}"
            card["_fmt"], card["_mode"] = fmt, mode
    return cards


def _frame(cards: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame({col: [c[col] for c in cards] for col in COLUMNS})


def _image_specs(
    out: Path, cards: list[dict[str, Any]], seed: int, file_id: int, scale: Scale
) -> list[tuple]:
    specs = []
    for row, c in enumerate(cards):
        sku, dealer = c["_sku"], c["_dealer"]
        photo = dict(dealer.photo, mark=f"{dealer.name}.ru")
        spec = (
            str(out / c["img_ref"]),
            [seed, file_id + 1, row],
            sku.target,
            sku.traits,
            CATEGORY[sku.target].aspect,
            photo,
            c["_fmt"],
            c["_mode"],
            scale.size_cap,
            scale.large_share,
        )
        specs.append((*spec, c["_hard"]) if "_hard" in c else spec)  # the hard profile's image effects
    return specs


def _render_all(specs: list[tuple], processes: int) -> None:
    processes = max(1, min(processes, os.cpu_count() or 1))
    if processes == 1 or len(specs) < 500:
        for spec in specs:
            render(spec)
        return
    # every spec carries its own seed, so the pool's scheduling cannot change any output byte
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for _ in pool.imap_unordered(render, specs, chunksize=64):
            pass


def read_marker(out: str | Path) -> dict[str, Any] | None:
    """The generator's marker in `out` ({seed, scale, version, complete}, and for the hard profile {profile,
    profile_version}), or None when there is none."""
    try:
        marker = json.loads((Path(out) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def marker_payload(seed: int, scale: str, profile: str, complete: bool) -> dict[str, Any]:
    """What the marker of a catalog of these parameters holds (the default profile's has no profile key, as the
    markers written before there were profiles)."""
    payload = {"seed": seed, "scale": scale, "version": GENERATOR_VERSION, "complete": complete}
    if profile != hard.DEFAULT:
        payload.update(profile=profile, profile_version=hard.HARD_VERSION)
    return payload


def _write_marker(out: Path, seed: int, scale: str, profile: str, complete: bool) -> None:
    payload = marker_payload(seed, scale, profile, complete)
    (out / MARKER).write_text(json.dumps(payload, sort_keys=True) + "\n", encoding="utf-8")


def _check_args(seed: int, scale: str, profile: str = hard.DEFAULT) -> Scale:
    if scale not in SCALES:
        raise ConfigError(f"unknown synthetic scale {scale!r}; use one of {', '.join(SCALES)}")
    if profile not in hard.PROFILES:
        raise ConfigError(f"unknown synthetic profile {profile!r}; use one of {', '.join(hard.PROFILES)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}; pass e.g. --seed 0")
    return SCALES[scale]


def _write_files(out: Path, seed: int, scale: str, profile: str = hard.DEFAULT) -> None:
    """Plan the cards and write both CSVs, every image and the marker into the empty folder `out` (the hard
    profile: its effects applied, and effects.csv)."""
    spec = SCALES[scale]
    _write_marker(out, seed, scale, profile, complete=False)
    company, database, skus = _plan(seed, spec)
    if profile == hard.HARD:
        effects = hard.apply(seed, company, database, skus)
        effects.to_csv(out / hard.EFFECTS_CSV, index=False, encoding="utf-8", lineterminator="\n")
    for target in sorted({c["target"] for c in company + database}):
        (out / "images" / target).mkdir(parents=True, exist_ok=True)
    _render_all(
        _image_specs(out, company, seed, 0, spec) + _image_specs(out, database, seed, 1, spec),
        spec.processes,
    )
    _frame(company).to_csv(out / CSV_NAMES[0], index=False, encoding="utf-8", lineterminator="\n")
    _frame(database).to_csv(out / CSV_NAMES[1], index=False, encoding="utf-8", lineterminator="\n")
    _write_marker(out, seed, scale, profile, complete=True)


def foreign_entries(out: str | Path) -> list[str]:
    """Names in `out` the generator did not write: all but placeholders when there is no marker, else none."""
    out = Path(out)
    if not out.is_dir() or read_marker(out) is not None:
        return []
    return sorted(p.name for p in out.iterdir() if p.name not in PLACEHOLDERS)


def _remove_leftovers(out: Path) -> None:
    """Temporary and replaced folders of `out` that a killed generator left behind (the lock is held)."""
    for pattern in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
        for path in out.parent.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def _carry_over(out: Path, tmp: Path) -> None:
    """Copy what the generator does not write (a README, a .gitkeep) from the old folder into the new one."""
    if not out.is_dir():
        return
    for entry in out.iterdir():
        if entry.name in (*CSV_NAMES, "images", MARKER, hard.EFFECTS_CSV):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, tmp / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` to `out`; an earlier catalog there is moved aside, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _refuse_unusable(out: Path) -> None:
    """Raise when `out` is a file or a folder holding what the generator did not write."""
    if out.exists() and not out.is_dir():
        raise CatalogError(f"{out} is a file, not a folder; choose another output folder for the catalog")
    foreign = foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise CatalogError(
            f"{out} holds files that the synthetic generator did not write ({shown}); "
            "choose another output folder or move those files away"
        )


def _generate_locked(out: Path, seed: int, scale: str, profile: str) -> Path:
    """Generate into a temporary folder beside `out` and rename it into place; the caller holds the lock."""
    _refuse_unusable(out)  # again: the folder may have changed while this process waited for the lock
    _remove_leftovers(out)
    # mkdir (not mkdtemp) so the folder gets the usual permissions; the name is unique per process and call
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        _write_files(tmp, seed, scale, profile)
        _carry_over(out, tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def generate(out: str | Path, seed: int = 0, scale: str = "demo", profile: str = hard.DEFAULT) -> Path:
    """Write company_data.csv, comparable_data.csv (schema + 'sku') and images/<target>/ under `out`.

    ``profile="hard"``: the same catalog with the hard profile's marketplace effects (docs/CATALOGS.md), and
    ``effects.csv`` recording each card's.

    The catalog is written into a temporary folder beside `out` and renamed into place under a file lock
    (``<out>.lock``), so readers never see a half-written catalog and concurrent calls do not collide. Only a
    missing or empty folder, or one the generator wrote earlier, is written; what the generator does not write
    there (a README) is kept. A folder holding anything else is refused.
    """
    _check_args(seed, scale, profile)
    out = Path(out)
    _refuse_unusable(out)  # before taking the lock, so a refused folder gets no lock file beside it
    with file_lock(out):
        return _generate_locked(out, int(seed), scale, profile)


def is_current(out: str | Path, seed: int = 0, scale: str = "demo", profile: str = hard.DEFAULT) -> bool:
    """True when `out` holds a complete catalog generated with these parameters by this generator version."""
    out = Path(out)
    marker = read_marker(out)
    expected = marker_payload(int(seed), scale, profile, complete=True)
    files = all((out / n).is_file() for n in CSV_NAMES) and (out / "images").is_dir()
    return files and marker == expected


def ensure_catalog(out: str | Path, seed: int = 0, scale: str = "demo", profile: str = hard.DEFAULT) -> Path:
    """Generate the catalog into `out` only when it is missing or was made with other parameters.

    Safe when several processes call it at once: one generates under the lock, the others wait for it and
    then find the finished catalog.
    """
    _check_args(seed, scale, profile)
    out = Path(out)
    if is_current(out, seed, scale, profile):
        return out
    _refuse_unusable(out)  # before taking the lock, so a refused folder gets no lock file beside it
    with file_lock(out):
        if is_current(out, seed, scale, profile):  # another process finished it while this one waited
            return out
        return _generate_locked(out, int(seed), scale, profile)

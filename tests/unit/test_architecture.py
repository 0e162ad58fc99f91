"""docs/ARCHITECTURE.md against the code: every module it names exists, and it names every package and module.

In "Packages and modules" each bullet is about one package (its first code span ending in ``/``); a bare file
name in the bullet is that package's (or one of its subpackages'). Paths elsewhere are relative to
``src/prodmatch/``, or to the repository for ``conf/``, ``tests/``, ``scripts/`` and the root scripts.
"""

from __future__ import annotations

import re
from pathlib import Path

from prodmatch import layout

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "prodmatch"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
PATH_SPAN = re.compile(r"^[\w.]+(/[\w.]+)*(\.py|/)$")
METRIC_PREFIXES = {layout.BEFORE_FIT, layout.EPOCH, layout.SEEN}  # `data/` and `retrieval/` are packages too


def module_spans(text: str) -> list[str]:
    """The code spans that name a module or a folder (metric prefixes such as ``seen/`` are not paths)."""
    return [s for s in spans(text) if PATH_SPAN.match(s) and s not in METRIC_PREFIXES]


def spans(text: str) -> list[str]:
    return [s.strip() for s in re.findall(r"`([^`\n]+)`", text)]


def bullets() -> list[tuple[Path | None, list[str]]]:
    """(package dir or None, its code spans) of each bullet of the "Packages and modules" section."""
    section = DOC.split("## Packages and modules", 1)[1].split("\n## ", 1)[0]
    out = []
    for bullet in re.split(r"\n- ", section):
        names = module_spans(bullet)
        package = next((PACKAGE / s for s in names if s.endswith("/") and (PACKAGE / s).is_dir()), None)
        out.append((package, names))
    return out


def exists(name: str, package: Path | None) -> bool:
    name = name.rstrip("/")
    if (PACKAGE / name).exists() or (ROOT / name).exists():
        return True
    return package is not None and any(package.rglob(name))


def test_every_module_the_doc_names_exists():
    for package, names in bullets():
        for name in names:
            assert exists(name, package), f"ARCHITECTURE.md names {name!r}, which is not in the code"
    for name in module_spans(DOC):
        if "/" in name.rstrip("/"):
            assert exists(name, None), f"ARCHITECTURE.md names {name!r}, which is not in the code"


def test_the_doc_covers_every_package_and_module():
    named = {(package, name.rstrip("/")) for package, names in bullets() for name in names}
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            path = path.parent
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == ".":
            continue
        direct = any(name == rel for _, name in named)
        in_bullet = any(
            package is not None and name == path.name and path.is_relative_to(package)
            for package, name in named
        )
        top_level = "/" not in rel and any(name == rel for _, name in named)
        if not (direct or in_bullet or top_level):
            missing.append(rel)
    assert missing == [], f"ARCHITECTURE.md does not place {missing}"

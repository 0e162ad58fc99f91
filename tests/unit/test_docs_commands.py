"""Every command the docs show still works: each `python train.py|evaluate.py|match.py ...` of README.md, data/README.md,
reports/README.md and docs/*.md composes with its overrides and passes the early config checks (a sweep's first value of each list),
and each `make <target>` names a Makefile target. Running them is what the e2e tests and the make targets' own
tests do at small size; this keeps the docs from drifting from the configs."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from prodmatch.tasks.checks import check_config
from prodmatch.tasks.resolvers import register_resolvers
from tests.helpers.run import REPO_ROOT

DOCS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "data" / "README.md",
    REPO_ROOT / "reports" / "README.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]
ENTRY_POINTS = ("train.py", "evaluate.py", "match.py")
SWEEP_SYNTAX = ("choice(", "range(", "interval(", "glob(")


def _blocks(text: str) -> list[str]:
    """Command lines of the fenced blocks (continuations joined, comments dropped) and of inline code spans."""
    lines: list[str] = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        lines += [line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`((?:python|make) [^`]+)`", text)
    return lines


def commands() -> list[tuple[str, str]]:
    """(doc, command) of every entry-point and make command the docs show."""
    found = []
    for doc in DOCS:
        for line in _blocks(doc.read_text(encoding="utf-8")):
            words = line.split()
            if len(words) > 1 and words[0] == "python" and words[1] in ENTRY_POINTS and "/" not in words[2:3]:
                found.append((doc.name, line))
            elif len(words) > 1 and words[0] == "make" and re.fullmatch(r"[a-z][\w-]*", words[1]):
                found.append((doc.name, f"make {words[1]}"))
    return sorted(set(found))


def _first_of_sweep(override: str) -> str:
    """`model=a,b` -> `model=a` (a sweep's first job); brackets and quotes keep their commas."""
    key, sep, value = override.partition("=")
    if not sep or value.startswith(("[", "{", "'", '"')):
        return override
    return f"{key}={value.split(',')[0]}"


def _overrides(words: list[str]) -> list[str] | None:
    """The command's overrides for composing one job; None when it only runs as a sweep of its sweeper."""
    out = []
    for word in words:
        # "...": an abridged command; "key=...": any value of the key (the doc's default stands in)
        if word == "-m" or word.startswith("-") or word == "..." or word.endswith("=..."):
            continue
        if any(s in word for s in SWEEP_SYNTAX):
            return None
        out.append(_first_of_sweep(word))
    return out


MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize(("doc", "command"), commands(), ids=[f"{d}: {c[:70]}" for d, c in commands()])
def test_a_documented_command_composes_and_passes_the_config_checks(doc: str, command: str):
    words = shlex.split(re.sub(r"<[^>]*>", "x", command))  # <placeholders> stand for a value
    if words[0] == "make":
        assert words[1] in MAKE_TARGETS, f"{doc}: `{command}` names no Makefile target"
        return
    overrides = _overrides(words[2:])
    if overrides is None:
        pytest.skip("a sweeper's search space: composed by tests/e2e/test_sweeps.py")
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(words[1].removesuffix(".py"), overrides=overrides, return_hydra_config=True)
    check_config(cfg)


# Run at small size: the README's evaluate.py / match.py commands that need no GPU, no download and no files of
# the user's (the training commands run at small size in tests/e2e/test_train.py and test_sweeps.py).
NOT_HERE = (
    "data=sportdoma",
    "data=csv",
    "pretrained=true",
    "embed_trainer=ddp ",
    "hydra/launcher",
    "ckpt_path=",
)


def small_runs() -> list[str]:
    return [
        c
        for d, c in commands()
        if d == "README.md"
        and c.split()[1] in ("evaluate.py", "match.py")
        and not any(n in c + " " for n in NOT_HERE)
    ]


@pytest.mark.slow  # one entry-point process per command: about 20 s each
@pytest.mark.parametrize("command", small_runs())
def test_a_readme_command_runs_at_small_size(command: str, tiny_data_dir, tmp_path):
    from tests.helpers.run import cli_overrides, run_script

    words = shlex.split(re.sub(r"<[^>]*>", "x", command))
    args = [w for w in words[2:] if w != "-m" and "=" in w]
    sweep = ["-m"] if "-m" in words else []
    proc = run_script(
        words[1],
        [*sweep, *args, *cli_overrides(tiny_data_dir, tmp_path, root=False), "logger=none"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

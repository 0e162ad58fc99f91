"""Dispatch ``python -m prodmatch.bench [--scale | --throughput | --startup | --incremental] ...`` to one benchmark's ``main``."""

from __future__ import annotations

import importlib
import sys

MODES = {
    "--scale": "prodmatch.bench.scale",
    "--throughput": "prodmatch.bench.throughput",
    "--startup": "prodmatch.bench.startup",
    "--incremental": "prodmatch.bench.incremental",
}
DEFAULT = "prodmatch.bench.search"


def main(argv: list[str] | None = None) -> object:
    """Run the benchmark the first mode flag names (the study-size table without one), with the other args."""
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = [flag for flag in MODES if flag in args]
    if len(chosen) > 1:
        raise SystemExit(f"error: pick one of {', '.join(chosen)}")
    module = MODES[chosen[0]] if chosen else DEFAULT
    if chosen:
        args.remove(chosen[0])
    try:
        bench = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise SystemExit(f"error: {chosen[0]} needs {module}, which this checkout does not have") from err
    return bench.main(args)


if __name__ == "__main__":
    main()

"""End of a sweep: list the jobs that failed and exit non-zero when any did (a Hydra callback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from prodmatch.layout import STATUS_FILE


def job_statuses(sweep_dir: Path) -> dict[Path, dict[str, Any]]:
    """job dir -> its recorded status, for every job under the sweep dir."""
    out: dict[Path, dict[str, Any]] = {}
    for path in sorted(Path(sweep_dir).rglob(STATUS_FILE)):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            status = None
        ok = isinstance(status, dict)
        out[path.parent] = status if ok else {"status": "failed", "error": f"{path} is unreadable"}
    return out


class SweepSummary(Callback):
    """After the last job: one line per failed job, then exit status 1 if any failed (0 otherwise)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = job_statuses(sweep_dir)
        bad = {d: s for d, s in statuses.items() if s.get("status") != "ok"}
        if not bad:
            print(f"sweep finished: {len(statuses)} jobs ok in {sweep_dir}")
            return
        print(f"sweep finished: {len(bad)} of {len(statuses)} jobs did not succeed:", file=sys.stderr)
        for job_dir, status in bad.items():
            print(f"  {job_dir}: {status.get('status')}: {status.get('error')}", file=sys.stderr)
        raise SystemExit(1)

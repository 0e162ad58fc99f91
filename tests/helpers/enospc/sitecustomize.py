"""Loaded at start-up by the entry points a fault test starts (this folder on PYTHONPATH): writes under the folder
named by PRODMATCH_TEST_ENOSPC raise ENOSPC, as on a full disk, where no small tmpfs could be mounted."""

import os

if os.environ.get("PRODMATCH_TEST_ENOSPC"):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    try:
        from tests.helpers.faults import install_enospc
    finally:
        sys.path.pop(0)
    install_enospc(os.environ["PRODMATCH_TEST_ENOSPC"])

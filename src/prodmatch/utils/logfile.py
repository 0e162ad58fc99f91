"""The run's log file (`<run dir>/<task>.log`, Hydra's `job_logging.handlers.file`), kept quiet on a full disk.

Python's own FileHandler prints a traceback for every record it cannot write; on a disk with no room left that
buries the job's one error line under hundreds of them. Here the first such record stops the file with one warning
line, and the console goes on.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class FileHandler(logging.FileHandler):
    """``logging.FileHandler`` that stops writing, with one warning, once its disk (or quota) is full."""

    full = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.full:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        err = sys.exc_info()[1]
        if not isinstance(err, OSError) or err.errno not in _DISK_FULL:
            super().handleError(record)
            return
        self.full = True
        stream, self.stream = self.stream, None
        with contextlib.suppress(OSError, AttributeError):  # what the disk cannot take is dropped, so closing
            stream.close()  # the handler does not try again
        print(
            f"warning: {self.baseFilename}: no space left on the disk; the log file stops here",
            file=sys.stderr,
        )

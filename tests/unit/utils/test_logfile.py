"""The run's log file on a full disk: one warning line, then silence, never a traceback per record."""

from __future__ import annotations

import errno
import logging

from prodmatch.utils.logfile import FileHandler
from tests.helpers.faults import fill, small_disk


class _FullStream:
    """A file on a disk with no room (where no tmpfs can be filled)."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_full_disk_stops_the_log_file_with_one_warning(tmp_path, capsys):
    folder = tmp_path / "disk"
    with small_disk(folder, 64) as mounted:
        handler = FileHandler(folder / "evaluate.log")
        logger = logging.getLogger("prodmatch.test_logfile")
        logger.addHandler(handler)
        try:
            logger.warning("before")
            handler.flush()
            if mounted:
                fill(folder)
            else:
                handler.stream = _FullStream()
            for i in range(50):
                logger.warning("record %d %s", i, "x" * 200)
        finally:
            logger.removeHandler(handler)
            handler.close()
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Logging error" not in err
        (line,) = err.strip().splitlines()
        assert (
            line == f"warning: {folder / 'evaluate.log'}: no space left on the disk; the log file stops here"
        )
        assert (folder / "evaluate.log").read_text().startswith("before")


def test_other_errors_are_reported_as_logging_reports_them(tmp_path, capsys):
    handler = FileHandler(tmp_path / "x.log")
    handler.stream = None  # closed under it
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg %s", ("a", "b"), None)  # a bad format
    handler.handle(record)
    handler.close()
    assert "Logging error" in capsys.readouterr().err

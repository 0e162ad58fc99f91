"""The pixel store: decode once, read the same crops back, never a stale or half-written store."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import prodmatch.data.images as images_module
from prodmatch.data.images import IMAGE_OK, IMAGE_TRUNCATED, IMAGE_UNREADABLE
from prodmatch.encoders import pixels
from prodmatch.encoders.image import ImageEncoder
from tests.helpers.faults import replace_keeping_size_and_mtime, same_size_image, small_disk, temporaries
from tests.helpers.run import REPO_ROOT


def _jpeg(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)
    return path


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    """Nine images of varied sizes, one truncated and one that does not decode."""
    good = [_jpeg(tmp_path / f"g{i}.jpg", seed=i, size=(40 + 5 * i, 36 + 3 * i)) for i in range(7)]
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(_jpeg(tmp_path / "whole.jpg", seed=99, size=(64, 64)).read_bytes()[:900])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    return [str(p) for p in [*good[:3], truncated, *good[3:5], broken, *good[5:]]]


def _encoder(pixel_cache: Path | None = None, **kwargs) -> ImageEncoder:
    base = dict(pretrained=False, image_size=24, batch_size=4, num_workers=0, device="cpu", progress=False)
    return ImageEncoder(**{**base, **kwargs}, pixel_cache=str(pixel_cache) if pixel_cache else None)


def _count_decodes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = images_module.read_image

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(images_module, "read_image", counting)
    return calls


def test_the_store_gives_the_very_embeddings_and_stats_of_decoding(files, tmp_path, monkeypatch):
    plain = _encoder().encode(files)
    expected = plain.vectors
    decodes = _count_decodes(monkeypatch)
    writing = _encoder(tmp_path / "px")
    np.testing.assert_array_equal(writing.encode(files).vectors, expected)  # the pass that writes the store
    assert len(decodes) == len(files)
    reading = _encoder(tmp_path / "px").encode(files)
    np.testing.assert_array_equal(reading.vectors, expected)  # bit for bit, NaN rows included
    assert len(decodes) == len(files)  # nothing decoded again
    assert reading.counts == plain.counts == {"unreadable_image": 1, "truncated_image": 1}
    assert reading.examples == plain.examples
    store = pixels.open_store(tmp_path / "px", files, 24)
    assert store is not None and store.pixels.shape == (len(files), 3, 24, 24)
    assert store.statuses.tolist().count(IMAGE_UNREADABLE) == 1
    assert store.statuses.tolist().count(IMAGE_TRUNCATED) == 1


def test_batches_cover_every_row_in_order_with_their_statuses(files, tmp_path):
    _encoder(tmp_path / "px").encode(files)
    store = pixels.open_store(tmp_path / "px", files, 24)
    got = list(store.batches(batch_size=4, device=torch.device("cpu"), prefetch=2))
    assert [len(crops) for crops, _ in got] == [4, 4, 1]
    np.testing.assert_array_equal(torch.cat([c for c, _ in got]).numpy(), store.pixels)
    np.testing.assert_array_equal(torch.cat([s for _, s in got]).numpy(), store.statuses)
    assert all(crops.dtype == torch.uint8 for crops, _ in got)


def _replace(path: str, seed: int) -> None:
    """Rewrite an image in place, with a new size and a later mtime."""
    _jpeg(Path(path), seed=seed, size=(52, 44))
    stamp = os.stat(path).st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))


def test_a_replaced_image_is_decoded_again_and_the_store_rewritten(files, tmp_path, monkeypatch):
    _encoder(tmp_path / "px").encode(files)
    before = pixels.open_store(tmp_path / "px", files, 24)
    _replace(files[0], seed=123)
    assert not before.matches(files)
    decodes = _count_decodes(monkeypatch)
    again = _encoder(tmp_path / "px").encode(files).vectors
    assert len(decodes) == len(files)  # the stale crops were not used
    np.testing.assert_array_equal(again, _encoder().encode(files).vectors)
    after = pixels.open_store(tmp_path / "px", files, 24)
    assert after.matches(files) and after.data_paths != before.data_paths
    # the rewrite removed the files it replaced; a reader that had them mapped still reads them
    assert sorted(p.name for p in (tmp_path / "px").iterdir()) == sorted(
        [after.path.name, *(p.name for p in after.data_paths)]
    )
    assert before.pixels[:].shape == after.pixels.shape
    decodes.clear()
    np.testing.assert_array_equal(_encoder(tmp_path / "px").encode(files).vectors, again)
    assert decodes == []  # the rewritten store serves the next pass


def test_the_store_dataset_is_only_offered_for_unchanged_files(files, tmp_path):
    encoder = _encoder(tmp_path / "px")
    encoder.encode(files)
    assert isinstance(encoder.embedder.dataset(files), pixels.PixelStoreDataset)
    _replace(files[2], seed=7)
    assert type(encoder.embedder.dataset(files)).__name__ == "ImageDataset"


def test_another_crop_size_is_another_store(files, tmp_path):
    _encoder(tmp_path / "px").encode(files)
    assert pixels.open_store(tmp_path / "px", files, 32) is None
    vectors = _encoder(tmp_path / "px", image_size=32).encode(files).vectors
    np.testing.assert_array_equal(vectors, _encoder(image_size=32).encode(files).vectors)


def test_a_pass_that_stops_early_leaves_no_store(files, tmp_path, monkeypatch):
    real = images_module.read_image
    seen: list[str] = []

    def failing(path, *args, **kwargs):
        seen.append(str(path))
        if len(seen) == 6:
            raise KeyboardInterrupt  # Ctrl+C in the middle of the pass
        return real(path, *args, **kwargs)

    monkeypatch.setattr(images_module, "read_image", failing)
    with pytest.raises(KeyboardInterrupt):
        _encoder(tmp_path / "px").encode(files)
    assert pixels.open_store(tmp_path / "px", files, 24) is None
    assert list((tmp_path / "px").iterdir()) == []  # no temporary file left either


def test_a_missing_file_means_no_store(files, tmp_path):
    paths = [*files, str(tmp_path / "gone.jpg")]
    vectors = _encoder(tmp_path / "px").encode(paths).vectors
    assert np.isnan(vectors[-1]).all()
    assert pixels.open_store(tmp_path / "px", paths, 24) is None
    assert not (tmp_path / "px").exists() or list((tmp_path / "px").iterdir()) == []


def test_no_room_on_the_disk_decodes_and_says_so(files, tmp_path, monkeypatch, caplog):
    free = (len(files) * 3 * 24 * 24) + 1  # under twice the store's size
    monkeypatch.setattr(pixels.shutil, "disk_usage", lambda _: type("U", (), {"free": free})())
    with caplog.at_level(logging.WARNING, logger="prodmatch.data"):
        vectors = _encoder(tmp_path / "px").encode(files).vectors
    np.testing.assert_array_equal(vectors, _encoder().encode(files).vectors)
    assert pixels.open_store(tmp_path / "px", files, 24) is None
    lines = [r.getMessage() for r in caplog.records if "pixel store skipped" in r.getMessage()]
    assert len(lines) == 1 and "encoders.image.pixel_cache=null" in lines[0]


def test_a_corrupt_store_is_decoded_and_written_again(files, tmp_path, caplog):
    _encoder(tmp_path / "px").encode(files)
    store = pixels.open_store(tmp_path / "px", files, 24)
    path = store.data_paths[0]
    path.write_bytes(path.read_bytes()[:200])  # truncated on disk
    with caplog.at_level(logging.WARNING, logger="prodmatch.data"):
        vectors = _encoder(tmp_path / "px").encode(files).vectors
    assert any("unreadable" in r.getMessage() and store.path.name in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(vectors, _encoder().encode(files).vectors)
    assert pixels.open_store(tmp_path / "px", files, 24) is not None  # whole again
    assert len(list((tmp_path / "px").iterdir())) == 3  # the corrupt write's files are gone


def test_the_store_dataset_gives_the_decoded_items_and_pickles_without_its_map(files, tmp_path):
    encoder = _encoder(tmp_path / "px")
    decoded = encoder.embedder.dataset(files)
    assert type(decoded).__name__ == "ImageDataset"  # nothing written yet
    encoder.encode(files)
    stored = encoder.embedder.dataset(files)
    assert isinstance(stored, pixels.PixelStoreDataset) and len(stored) == len(files)
    for i in (0, 3, 6):
        crop, status = stored[i]
        want_crop, want_status = decoded[i]
        assert status == want_status
        if status != IMAGE_UNREADABLE:
            assert torch.equal(crop, want_crop)
    assert decoded[0][1] == IMAGE_OK
    clone = pickle.loads(pickle.dumps(stored))  # what a DataLoader worker receives
    assert clone._pixels is None and torch.equal(clone[1][0], stored[1][0])


def test_a_second_write_of_the_same_files_keeps_the_first(files, tmp_path):
    """Two cold runs at once both write the store: the second keeps the first's files, so a reader of them is
    never left with a removed file."""
    _encoder(tmp_path / "px").encode(files)
    first = pixels.open_store(tmp_path / "px", files, 24)
    writer = pixels.store_writer(tmp_path / "px", files, 24)
    for _ in writer.tee(_encoder().embedder.loader(files, torch.device("cpu"))):
        pass
    again = pixels.open_store(tmp_path / "px", files, 24)
    assert again.data_paths == first.data_paths
    assert len(list((tmp_path / "px").iterdir())) == 3  # the JSON and one write's two files


@pytest.mark.parametrize("in_place", [True, False], ids=["cp -p", "rsync -a"])
def test_an_image_replaced_with_the_same_size_and_mtime_is_decoded_again(files, tmp_path, in_place):
    """The size and mtime can be kept by cp -p, rsync -a, touch -r or an archive; inode and change time cannot."""
    _encoder(tmp_path / "px").encode(files)
    for i, path in enumerate(files[:3]):
        replace_keeping_size_and_mtime(Path(path), same_size_image(Path(path), (40 * i, 200, 90)), in_place)
    assert not pixels.open_store(tmp_path / "px", files, 24).matches(files)
    np.testing.assert_array_equal(
        _encoder(tmp_path / "px").encode(files).vectors, _encoder().encode(files).vectors
    )


@pytest.mark.parametrize("part", ["crops", "statuses", "json"])
def test_an_empty_store_file_is_a_miss_and_written_again(files, tmp_path, caplog, part):
    """What a power loss can leave: a 0-byte file under the final name. One warning, decoded, rewritten."""
    _encoder(tmp_path / "px").encode(files)
    store = pixels.open_store(tmp_path / "px", files, 24)
    {"crops": store.data_paths[0], "statuses": store.data_paths[1], "json": store.path}[part].write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="prodmatch.data"):
        vectors = _encoder(tmp_path / "px").encode(files).vectors
    np.testing.assert_array_equal(vectors, _encoder().encode(files).vectors)
    assert (
        len(
            [
                r
                for r in caplog.records
                if r.getMessage().startswith("pixel store") and "unreadable" in r.getMessage()
            ]
        )
        == 1
    )
    again = pixels.open_store(tmp_path / "px", files, 24)
    assert again is not None and again.matches(files)
    assert len(list((tmp_path / "px").iterdir())) == 3  # the torn write's files are gone


_WRITE_AND_STOP = """
import os, signal, sys
from pathlib import Path
import torch
from prodmatch.encoders import pixels
from prodmatch.encoders.image import ImageEncoder
from tests.helpers.faults import fill, install_enospc

fault, folder, files = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
encoder = ImageEncoder(pretrained=False, image_size=24, batch_size=2, num_workers=0, device="cpu", progress=False)
writer = pixels.store_writer(folder, files, 24)
assert writer is not None, "room for the store when the pass starts"

def batches():
    for i, batch in enumerate(encoder.embedder.loader(files, torch.device("cpu"))):
        yield batch
        if i == 0 and fault == "fill":
            fill(folder)  # the disk fills up while the store is written
        elif i == 0 and fault == "enospc":
            install_enospc(folder)  # no tmpfs here: every write from now on fails as on a full disk
        elif i == 0 and fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)

rows = sum(len(crops) for crops, _ in writer.tee(batches()))
print("rows", rows)
"""


def _write_and_stop(fault: str, folder: Path, files: list[str]) -> subprocess.CompletedProcess:
    """A decoding pass that writes the store in another process, with ``fault`` after its first batch."""
    return subprocess.run(
        [sys.executable, "-c", _WRITE_AND_STOP, fault, str(folder), *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_disk_that_fills_up_while_the_store_is_written_is_one_warning_never_a_sigbus(files, tmp_path):
    """The crops file's space is allocated before the first crop goes through its memory map."""
    folder = tmp_path / "px"
    with small_disk(folder, 256) as mounted:
        proc = _write_and_stop("fill" if mounted else "enospc", folder, files)
        assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
        assert proc.stdout.split() == ["rows", str(len(files))]  # the pass went on decoding
        warnings = [line for line in proc.stderr.splitlines() if "not written" in line]
        assert len(warnings) == 1 and "no space left" in warnings[0]
        assert temporaries(folder) == [] and pixels.open_store(folder, files, 24) is None
        assert {p.name for p in folder.iterdir()} <= {".filler"}  # nothing of the write left


def test_a_writer_killed_mid_write_leaves_a_temporary_the_next_writer_removes(files, tmp_path):
    folder = tmp_path / "px"
    proc = _write_and_stop("kill", folder, files)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(temporaries(folder)) == 1  # SIGKILL: nothing could clean up
    np.testing.assert_array_equal(_encoder(folder).encode(files).vectors, _encoder().encode(files).vectors)
    assert temporaries(folder) == []
    assert pixels.open_store(folder, files, 24).matches(files)


def test_a_folder_without_room_is_said_once_and_not_tried_again(files, tmp_path, monkeypatch, caplog):
    """Training evaluates every few epochs: the warning is not repeated, and nothing is written meanwhile."""
    monkeypatch.setattr(pixels.shutil, "disk_usage", lambda _: type("U", (), {"free": 10})())
    with caplog.at_level(logging.WARNING, logger="prodmatch.data"):
        for _ in range(3):
            _encoder(tmp_path / "px").encode(files)
            _encoder(tmp_path / "px", image_size=32).encode(files)
    assert len([r for r in caplog.records if r.getMessage().startswith("pixel store")]) == 1

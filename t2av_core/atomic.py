"""Writing output files atomically, and checking a destination before a long job.

Every file the pack writes (mp4s, converted weights, audio) is written under a unique temporary name in the
destination's own folder and renamed over the destination only once it is complete. So:

* an existing file at that path is replaced only by a complete new one (a failed or cancelled write leaves
  it untouched, and removes the temporary file);
* two processes writing the same path never mix their bytes: each writes its own temporary file, and the
  last rename wins with a whole file;
* a reader never sees a half-written file under the final name.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import T2AVError


def check_destination(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` as a Path if a file can be written there; T2AVError with what to fix otherwise.

    Checked before a long job starts, so a bad output path costs seconds, not a whole generation: the folder
    must exist, ``path`` must not be a folder, and a file must really be creatable in the folder (this catches
    read-only folders and file systems, and missing permissions, whoever runs the program)."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise T2AVError(f"the {what} {path} is a folder; give a file name inside it, e.g. {path / 'out.mp4'}")
    if not folder.is_dir():
        raise T2AVError(f"the folder of the {what} ({folder}) does not exist; create it first or choose another")
    try:
        probe = _new_file(path, ".probe")
    except OSError as error:
        raise T2AVError(f"cannot write the {what} into {folder}: {error.strerror or error}. Choose a folder you "
                        "can write to") from error
    probe.unlink()
    return path


def _new_file(path: Path, suffix: str) -> Path:
    """Create an empty file with a unique hidden name beside ``path``. Created with mode 0o666, so the
    process umask gives it the same permissions as any other new file (tempfile's would be 0600)."""
    while True:
        candidate = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            continue


@contextmanager
def atomic_write(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a new empty temporary file beside ``path`` (same suffix, so format-by-extension writers still work);
    on a clean exit it is renamed to ``path``. On any exception, Ctrl-C included, the temporary file is removed
    and ``path`` is left as it was. Write errors of the disk (full,
    read-only, no permission) become T2AVError naming the destination."""
    path = Path(path)
    check_destination(path, what)
    tmp = _new_file(path, f".partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise _write_error(path, what, error) from error
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_error(path: Path, what: str, error: OSError) -> T2AVError:
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied"}.get(error.errno, error.strerror or str(error))
    return T2AVError(f"could not write the {what} {path}: {reason}. Nothing was written there (an existing file "
                     "is unchanged); free space or choose another folder and run again")

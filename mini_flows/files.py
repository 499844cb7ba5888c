"""Writing files all or nothing: a failure part-way never leaves a half-written or emptied file."""

from __future__ import annotations

import os
import stat
import tempfile
from typing import IO, Any, Callable


def write_atomically(path: Any, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file in the folder of the file ``path`` names, then
    rename it over that file.

    The rename is atomic on POSIX and Windows, so the file holds either its old content or the
    complete new one, never a part. On any failure the temporary file is removed and the error
    re-raised; an error of the file system names ``path``, never the temporary file. Where
    ``path`` is a symbolic link, its target is written and the link kept. The new content keeps
    an existing file's permissions (a private 0600 file stays private); a new file gets those a
    plain ``open(path, "wb")`` would have given it. IsADirectoryError where ``path`` is a folder.
    """
    name = os.fspath(path)
    target = os.path.realpath(name)
    if os.path.isdir(target) or not os.path.basename(name):
        raise IsADirectoryError(f"{name!r} is a folder; name a file")
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    except OSError as err:
        raise _naming(err, name) from None
    try:
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".partial-")
    except OSError as err:
        raise _naming(err, name) from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as err:
        os.unlink(temporary)
        if isinstance(err, OSError) and err.filename == temporary:
            raise _naming(err, name) from None
        raise


def _naming(err: OSError, name: Any) -> OSError:
    """The same error (its errno picks the subclass, PermissionError for EACCES) about ``name``."""
    return OSError(err.errno, err.strerror, name)

"""Writing files all or nothing: a failure part-way never leaves a half-written or emptied file."""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Callable


def write_atomically(path: Any, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, then rename it over ``path``.

    The rename is atomic on POSIX and Windows, so ``path`` holds either its old content or the
    complete new one, never a part. On any failure the temporary file is removed and the error
    re-raised. The new file gets the mode a plain ``open(path, "wb")`` would have given it.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise

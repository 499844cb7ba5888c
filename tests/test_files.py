"""Atomic writes: the old content or the whole new one, the file's permissions kept, a symbolic
link written through and kept, and errors that name the file asked for."""

from __future__ import annotations

import errno
import os
import stat
import tempfile

import pytest

from mini_flows.files import write_atomically


def write(content: bytes):
    return lambda file: file.write(content)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path):
    umask = os.umask(0o027)
    try:
        write_atomically(tmp_path / "new.txt", write(b"new"))
    finally:
        os.umask(umask)
    assert (tmp_path / "new.txt").read_bytes() == b"new" and mode(tmp_path / "new.txt") == 0o640


@pytest.mark.parametrize("permissions", [0o600, 0o640, 0o755])
def test_an_existing_file_keeps_its_permissions(tmp_path, permissions):
    path = tmp_path / "private.txt"
    path.write_bytes(b"old")
    path.chmod(permissions)
    write_atomically(path, write(b"new"))
    assert path.read_bytes() == b"new" and mode(path) == permissions


def test_a_symbolic_link_is_written_through_and_kept(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "results.json"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    write_atomically(link, write(b"new"))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["results.json"]


def test_a_dangling_link_creates_its_target_as_open_would(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "target.txt")
    write_atomically(link, write(b"new"))
    assert link.is_symlink() and (tmp_path / "target.txt").read_bytes() == b"new"


@pytest.mark.parametrize("name", [".", "", "sub", "sub/", "link-to-sub"])
def test_a_folder_is_refused_in_one_line(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link-to-sub").symlink_to(tmp_path / "sub")
    with pytest.raises(IsADirectoryError, match=rf"^'{name}' is a folder; name a file$"):
        write_atomically(name, write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link-to-sub", "sub"]
    assert not any((tmp_path / "sub").iterdir())


def test_a_read_only_folder_gives_an_error_naming_the_file_not_the_temporary_one(tmp_path, monkeypatch):
    """As root (this test's usual user in a container) every folder is writable, so the refusal
    mkstemp meets in a read-only folder is played by a stand-in that raises what it raises."""
    def refused(dir, prefix):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.path.join(dir, prefix + "x1y2z3"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    path = tmp_path / "results.json"
    with pytest.raises(PermissionError) as caught:
        write_atomically(path, write(b"new"))
    assert str(caught.value) == f"[Errno {errno.EACCES}] Permission denied: {str(path)!r}"


def test_a_failed_rename_names_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def busy(source, destination):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), source, destination)

    monkeypatch.setattr(os, "replace", busy)
    path = tmp_path / "results.json"
    with pytest.raises(OSError) as caught:
        write_atomically(path, write(b"new"))
    assert str(caught.value) == f"[Errno {errno.EBUSY}] Device or resource busy: {str(path)!r}"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(b"old")

    def fails(file):
        file.write(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        write_atomically(path, fails)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]

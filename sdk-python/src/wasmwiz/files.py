r"""Files in and out of an execution: the guest's in-memory filesystem.

``files=`` of :meth:`Client.run` (and of the stream, batch and async
variants) gives the guest a writable directory ``/`` holding the files you
pass; ``collect=`` names glob patterns (``"out/*.png"``, ``"**"``) of the
files to send back, which arrive as :attr:`Result.files`. Nothing touches the
server's disk.

``files=`` takes a mapping of path to contents (``bytes``; ``str`` is UTF-8
encoded) or a :class:`Filesystem`, which also holds directories and symbolic
links; :func:`files_from_dir` builds one from a local directory.

Paths are relative, ``/``-separated, without ``.`` or ``..`` segments: they
are checked here before anything is sent, and so is the total size against
``limits={"fs_bytes": ...}`` when you give one.

Example::

    import wasmwiz
    files = wasmwiz.files_from_dir("data", prefix="input")
    files.add_file("input/extra.txt", "one more line\n")
    result = client.run("fsreport.wasm", files=files, collect=["out/*"])
    print(result.files["out/report.txt"].decode())
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

from ._proto import execution_pb2
from .errors import FieldViolation, InvalidArgument, LimitExceeded, human_size

__all__ = ["FileData", "FilesLike", "Filesystem", "files_from_dir"]

#: The contents of one input file: bytes, or ``str`` (UTF-8 encoded).
FileData = Union[bytes, bytearray, memoryview, str]

#: Bytes of one ``FsEntry`` message, in and out: files larger than this travel
#: as consecutive pieces with the same path (the server sends at most 1 MiB).
PIECE_SIZE = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class _File:
    """A regular file: its bytes, or a local file read when it is sent."""

    data: Optional[bytes] = None
    source: Optional[Path] = None
    size: int = 0

    def pieces(self, piece_size: int) -> Iterator[bytes]:
        """The contents in pieces of at most ``piece_size`` (one empty piece when empty)."""
        if self.data is not None:
            if not self.data:
                yield b""
            for offset in range(0, len(self.data), piece_size):
                yield self.data[offset : offset + piece_size]
            return
        assert self.source is not None
        with self.source.open("rb") as handle:
            piece = handle.read(piece_size)
            yield piece  # an empty file is one empty piece
            while len(piece) == piece_size:
                piece = handle.read(piece_size)
                if piece:
                    yield piece

    def read(self) -> bytes:
        """All of the contents."""
        return b"".join(self.pieces(PIECE_SIZE))


@dataclasses.dataclass(frozen=True)
class _Directory:
    """A directory (parents of every entry exist implicitly; this keeps empty ones)."""


@dataclasses.dataclass(frozen=True)
class _Symlink:
    """A symbolic link to ``target``."""

    target: str


_Entry = Union[_File, _Directory, _Symlink]


def _bytes_of(entry: _Entry) -> int:
    """What an entry counts against ``fs_bytes``: a file's contents, a link's target."""
    if isinstance(entry, _File):
        return entry.size
    if isinstance(entry, _Symlink):
        return len(entry.target.encode("utf-8"))
    return 0


def check_path(path: object, field: str = "fs") -> str:
    """``path`` if it is a valid guest path; else :class:`~wasmwiz.InvalidArgument`.

    Valid: a non-empty ``str``, relative to the guest's root, ``/``-separated,
    with no empty, ``.`` or ``..`` segment and no NUL byte.
    """
    if not isinstance(path, str):
        raise TypeError(f"a file path must be a str, not {type(path).__name__}")
    problem = None
    if not path:
        problem = "a path must not be empty"
    elif path.startswith("/"):
        problem = "paths are relative to the guest's root: drop the leading '/'"
    elif "\0" in path:
        problem = "a path must not contain a NUL byte"
    else:
        for segment in path.split("/"):
            if segment == "..":
                problem = "'..' segments are not allowed"
            elif segment == ".":
                problem = "'.' segments are not allowed"
            elif not segment:
                problem = "empty segments ('//' or a trailing '/') are not allowed"
            if problem:
                break
    if problem is None:
        return path
    said = f"path {path!r}: {problem}"
    raise InvalidArgument(
        f"{said} (checked before uploading)", violations=[FieldViolation(field, said)]
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


class Filesystem:
    r"""The guest's initial tree: files, directories and symbolic links by path.

    Adding a path again replaces its entry. Entries are sent in path order.

    Args:
        files: Path to contents, added with :meth:`add_file`.

    Example::

        fs = wasmwiz.Filesystem({"input/a.txt": "alpha\n"})
        fs.add_dir("out").add_symlink("latest", "input/a.txt")
        fs.add_tree("testdata", prefix="input/more")
        print(len(fs), fs.total_bytes)
    """

    def __init__(self, files: Optional[Mapping[str, FileData]] = None) -> None:
        self._entries: dict[str, _Entry] = {}
        for path, data in (files or {}).items():
            self.add_file(path, data)

    def add_file(self, path: str, data: FileData) -> Filesystem:
        """Add a regular file with these contents (``str`` is UTF-8 encoded); returns ``self``."""
        if isinstance(data, str):
            raw = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
        else:
            raise TypeError(
                f"the contents of {path!r} must be bytes or str, not {type(data).__name__}"
            )
        self._entries[check_path(path)] = _File(data=raw, size=len(raw))
        return self

    def add_local_file(self, path: str, source: Union[str, os.PathLike[str]]) -> Filesystem:
        """Add a regular file read from the local ``source`` when sent; returns ``self``."""
        local = Path(source)
        size = local.stat().st_size  # FileNotFoundError for a missing file
        self._entries[check_path(path)] = _File(source=local, size=size)
        return self

    def add_dir(self, path: str) -> Filesystem:
        """Add a directory (only needed for empty ones); returns ``self``."""
        self._entries[check_path(path)] = _Directory()
        return self

    def add_symlink(self, path: str, target: str) -> Filesystem:
        """Add a symbolic link at ``path`` pointing to ``target``; returns ``self``."""
        if not isinstance(target, str) or not target:
            raise TypeError(f"the target of symlink {path!r} must be a non-empty str")
        self._entries[check_path(path)] = _Symlink(target)
        return self

    def add_tree(self, directory: Union[str, os.PathLike[str]], prefix: str = "") -> Filesystem:
        """Add everything under a local ``directory``, at ``prefix`` in the guest; returns ``self``.

        Regular files are read when sent; symbolic links are kept as links
        (never followed); empty directories are kept. Anything else (a
        socket, a device) raises ``ValueError``.
        """
        root = Path(directory)
        if not root.is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
        if prefix:
            check_path(prefix)
        if not self._add_children(root, prefix) and prefix:
            self.add_dir(prefix)
        return self

    def _add_children(self, local: Path, prefix: str) -> bool:
        """Add the entries under ``local``; False when it has none."""
        with os.scandir(local) as scan:
            children = sorted(scan, key=lambda child: child.name)
        for child in children:
            path = _join(prefix, child.name)
            mode = child.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                self.add_symlink(path, os.readlink(child.path))
            elif stat.S_ISDIR(mode):
                if not self._add_children(Path(child.path), path):
                    self.add_dir(path)
            elif stat.S_ISREG(mode):
                self.add_local_file(path, child.path)
            else:
                raise ValueError(f"not a regular file, directory or symlink: {child.path}")
        return bool(children)

    @property
    def paths(self) -> list[str]:
        """Every entry's path, in path order."""
        return sorted(self._entries)

    @property
    def total_bytes(self) -> int:
        """What counts against ``fs_bytes``: file contents and symlink targets, in bytes."""
        return sum(_bytes_of(entry) for entry in self._entries.values())

    def total_bytes_except(self, paths: Sequence[str]) -> int:
        """:attr:`total_bytes` of the entries whose path is not in ``paths``."""
        skip = set(paths)
        return sum(_bytes_of(entry) for path, entry in self._entries.items() if path not in skip)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __repr__(self) -> str:
        return f"Filesystem({len(self)} entries, {human_size(self.total_bytes)})"

    def _sorted(self) -> list[tuple[str, _Entry]]:
        return sorted(self._entries.items())

    def to_entries(self) -> list[execution_pb2.FsEntry]:
        """Every entry as one ``FsEntry``, files whole (for a request that carries them inline)."""
        out = []
        for path, entry in self._sorted():
            if isinstance(entry, _File):
                out.append(execution_pb2.FsEntry(path=path, file=entry.read()))
            elif isinstance(entry, _Directory):
                out.append(execution_pb2.FsEntry(path=path, directory=True))
            else:
                out.append(execution_pb2.FsEntry(path=path, symlink=entry.target))
        return out

    def iter_pieces(self, piece_size: int = PIECE_SIZE) -> Iterator[execution_pb2.FsEntry]:
        """Every entry, files in consecutive pieces of at most ``piece_size`` (for ``fs_chunk``)."""
        for path, entry in self._sorted():
            if isinstance(entry, _File):
                for piece in entry.pieces(piece_size):
                    yield execution_pb2.FsEntry(path=path, file=piece)
            elif isinstance(entry, _Directory):
                yield execution_pb2.FsEntry(path=path, directory=True)
            else:
                yield execution_pb2.FsEntry(path=path, symlink=entry.target)


#: What ``files=`` accepts: path to contents, or a :class:`Filesystem`.
FilesLike = Union[Mapping[str, FileData], Filesystem]


def files_from_dir(directory: Union[str, os.PathLike[str]], prefix: str = "") -> Filesystem:
    """A :class:`Filesystem` holding a local directory's tree at ``prefix`` in the guest.

    Files are read when the run sends them; symbolic links stay links; empty
    directories are kept.

    Example::

        result = client.run("fsreport.wasm", files=wasmwiz.files_from_dir("data", prefix="input"))
    """
    return Filesystem().add_tree(directory, prefix)


def as_filesystem(files: Optional[FilesLike]) -> Optional[Filesystem]:
    """``files=`` as a :class:`Filesystem` (``None`` stays ``None``)."""
    if files is None or isinstance(files, Filesystem):
        return files
    if isinstance(files, Mapping):
        return Filesystem(files)
    raise TypeError(
        f"files must be a mapping of path to bytes/str or a Filesystem, not {type(files).__name__}"
    )


def check_collect(collect: Sequence[str]) -> list[str]:
    """``collect=`` as a list of non-empty glob patterns (a lone ``str`` is refused)."""
    if isinstance(collect, (str, bytes)):
        raise TypeError("collect must be a sequence of glob patterns, e.g. ['out/*'], not a string")
    patterns = list(collect)
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("every collect pattern must be a non-empty str")
    return patterns


def check_total(total: int, maximum: Optional[int], field: str = "fs") -> None:
    """Refuse input files past ``limits.fs_bytes`` before any of them is sent.

    It reads like the server's own refusal (``INVALID_ARGUMENT`` on ``fs``
    with :class:`~wasmwiz.LimitExceeded`), but ``rpc_error`` is ``None``: no
    bytes left this machine.
    """
    if maximum is None or total <= maximum:
        return
    limit = LimitExceeded(field, total, maximum, "bytes")
    raise InvalidArgument(
        f"{limit.message} (checked before uploading)",
        violations=[FieldViolation(field, limit.message)],
        limit=limit,
    )


class FileAssembler:
    """Puts collected files back together from their pieces, in path order."""

    def __init__(self) -> None:
        self._parts: dict[str, list[bytes]] = {}

    def add(self, path: str, data: bytes) -> None:
        """One more piece of ``path`` (pieces of one file arrive in order)."""
        self._parts.setdefault(path, []).append(data)

    def build(self) -> dict[str, bytes]:
        """Path to whole contents."""
        return {path: b"".join(parts) for path, parts in self._parts.items()}

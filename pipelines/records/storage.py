"""Where results go: a local or NFS path, or a cloud URI (s3://, gs://, ...)
opened through pyarrow filesystems, the same ones Ray Tune uses for its
checkpoints. Every write is atomic: temp file + rename on a local disk, one
whole-object upload on an object store (objects appear complete or not at all).
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

STORAGE_ENV = "RAYSWEEP_STORAGE"  # the default --storage, e.g. set on a cluster's head node
DEFAULT_STORAGE = "results"


@dataclass(frozen=True)
class Location:
    """A path in a filesystem; `uri` is how the user names it."""

    fs: pafs.FileSystem
    path: str
    uri: str

    def __truediv__(self, name: str) -> Location:
        path = f"{self.path.rstrip('/')}/{name}"
        if self.is_local:  # a local path may contain "?"
            return Location(self.fs, path, path)
        base, sep, query = self.uri.partition("?")  # s3://b/p?endpoint_override=...
        return Location(self.fs, path, f"{base.rstrip('/')}/{name}{sep}{query}")

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.File

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.readall()

    def write_bytes(self, data: bytes) -> None:
        """Atomic: a reader sees the old content or the new, never a part."""
        if self.is_local:
            _replace_local(Path(self.path), data)
        else:
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)

    def make_new_dir(self) -> bool:
        """Create this directory; False if something is already there."""
        if self.is_local:
            try:
                Path(self.path).mkdir()
            except FileExistsError:
                return False
            return True
        if self.exists():  # object stores have no atomic mkdir; names carry a timestamp
            return False
        self.fs.create_dir(self.path)
        return True

    def tune_storage(self) -> dict[str, Any]:
        """Ray Tune's RunConfig/Tuner.restore arguments for this location."""
        if self.is_local:
            return {"storage_path": self.path}
        return {"storage_path": self.path, "storage_filesystem": self.fs}


def _replace_local(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def resolve(where: str, flag: str = "--storage") -> Location:
    """A Location for a local path or a URI; a bad URI is a UsageError."""
    if "://" not in where:
        path = Path(where).expanduser().resolve()
        return Location(pafs.LocalFileSystem(), path.as_posix(), str(path))
    try:
        fs, path = pafs.FileSystem.from_uri(where)
    except (pa.ArrowException, OSError, ValueError) as e:  # ArrowInvalid is a ValueError
        raise UsageError(f"{flag} {where}: cannot open it ({first_line(e)}); check the "
                         f"scheme (s3://, gs://, file://) and credentials") from None
    if isinstance(fs, pafs.LocalFileSystem):  # file:// URIs
        return Location(fs, path, path)
    return Location(fs, path.rstrip("/"), where)


def default_storage() -> str:
    """The default --storage: $RAYSWEEP_STORAGE, else ./results."""
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def check_writable(root: Location) -> None:
    """Fail early, before anything is created, if results could not be written."""
    if root.is_local:
        _check_local_writable(Path(root.path), root.uri)
        return
    probe = root / f".raysweep-write-check-{uuid.uuid4().hex}"
    try:  # a real write: listing permissions does not tell whether PUT is allowed
        probe.write_bytes(b"")
        root.fs.delete_file(probe.path)
    except OSError as e:
        raise UsageError(f"--storage {root.uri} is not writable ({first_line(e)}); check the "
                         f"bucket, path and credentials") from None


def _check_local_writable(storage: Path, shown: str) -> None:
    existing = storage
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--storage {shown}: {existing} is a file, not a directory; "
                         f"choose another --storage")
    try:  # a real write: permission bits do not tell for root or read-only mounts
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(f"--storage {shown}: {existing} is not writable ({e.strerror}); "
                         f"choose a writable --storage directory") from None


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def first_line(error: Exception) -> str:
    """An error's message in one line (its type's name if it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""Where data lives and where its decoded copy is cached: the data directory
(--data-dir, $RAYSWEEP_DATA_DIR), the per-machine cache root
($RAYSWEEP_CACHE_DIR), a fingerprint of the source files, and atomic writes
of the decoded arrays. Every data source's cache is built with these."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

DATA_DIR_ENV = "RAYSWEEP_DATA_DIR"


CACHE_DIR_ENV = "RAYSWEEP_CACHE_DIR"


DEFAULT_DATA_DIR = "./data"


def resolve_data_dir(cli_value: str | None) -> Path:
    """--data-dir if given, else $RAYSWEEP_DATA_DIR, else ./data."""
    return Path(cli_value or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def resolve_path(path: str, data_dir: Path) -> Path:
    """A source's folder: `~` expanded, absolute as it is, relative under `data_dir`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else data_dir / p


def files_fingerprint(salt: str, files: Iterable[Path]) -> str:
    """A cache key for decoded `files`: their paths, sizes and modification times,
    so a changed or moved source decodes again."""
    h = hashlib.sha256(salt.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """Where decoded data is cached on this machine: $RAYSWEEP_CACHE_DIR or
    ~/.cache/raysweep."""
    return Path(os.environ.get(CACHE_DIR_ENV) or "~/.cache/raysweep").expanduser()


def save_atomic(path: Path, array: np.ndarray) -> None:
    """Write `array` as .npy at `path`: whole or not at all (concurrent trials may read it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)

"""The per-snapshot file manifest: `<table>/_shipml/v<N>.json`, sha256 of each data file.

Delta's log records which files make up a version but not their content hashes, so shipml
keeps them here (Spark and other Delta readers skip `_`-prefixed folders). Paths are inside a
pyarrow filesystem, so the same code serves a local folder and an object store.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING

from shipml._hashing import canonical_json

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem


def sha256_at(filesystem: FileSystem, path: str) -> str:
    """sha256 of one file, streamed; raises FileNotFoundError if it is gone."""
    h = hashlib.sha256()
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def read(filesystem: FileSystem, table: str, version: int) -> dict[str, str]:
    """Recorded {relative path: sha256} of snapshot `version`; empty if never recorded."""
    try:
        with filesystem.open_input_stream(_path(table, version)) as stream:
            return dict(json.loads(stream.read())["files"])
    except FileNotFoundError:
        return {}


def write(filesystem: FileSystem, table: str, version: int, paths: list[str]) -> dict[str, str]:
    """Hash `paths` (relative to `table`) and record them atomically: temp file, then rename."""
    files = {p: sha256_at(filesystem, f"{table}/{p}") for p in sorted(paths)}
    body = canonical_json({"version": version, "files": files}).encode()
    final = _path(table, version)
    filesystem.create_dir(f"{table}/_shipml", recursive=True)
    temp = f"{final}.{uuid.uuid4().hex}.tmp"
    with filesystem.open_output_stream(temp) as out:
        out.write(body)
    filesystem.move(temp, final)
    return files


def _path(table: str, version: int) -> str:
    return f"{table}/_shipml/v{version:020d}.json"

"""The per-snapshot file manifest: `<table>/_shipml/v<N>.json`, sha256 of each data file.

Delta's log records which files make up a version but not their content hashes, so shipml
keeps them here (Spark and other Delta readers skip `_`-prefixed folders). It also lists the
table's data files against every file the log ever added, to find the unused ones a killed
ingest leaves behind. Paths are inside a
pyarrow filesystem, so the same code serves a local folder and an object store.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import TYPE_CHECKING

from shipml._hashing import canonical_json

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

_COMMIT = re.compile(r"[0-9]{20}\.json\Z")
_STAGED_COMMIT = re.compile(r"_delta_log/[0-9]{20}\.json#[0-9]+\Z")


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


def data_files(filesystem: FileSystem, table: str) -> dict[str, float]:
    """Every data file under `table` (relative path -> mtime, epoch seconds), skipping the
    `_`- and `.`-prefixed folders and files that Delta readers skip (`_delta_log`, `_shipml`),
    plus the commit files delta-rs staged in `_delta_log` but never published (`<N>.json#1`)."""
    from pyarrow import fs

    found = {}
    selector = fs.FileSelector(table, recursive=True, allow_not_found=True)
    for info in filesystem.get_file_info(selector):
        rel = info.path[len(table) :].lstrip("/")
        if info.type != fs.FileType.File:
            continue
        if any(p[:1] in "_." for p in rel.split("/")) and not _STAGED_COMMIT.match(rel):
            continue
        found[rel] = info.mtime.timestamp() if info.mtime is not None else 0.0
    return found


def committed_files(filesystem: FileSystem, table: str) -> set[str] | None:
    """Every data file any commit of the Delta log ever added (relative, decoded paths), or
    None when the log is not complete from version 0 (then no file can be called unused)."""
    from urllib.parse import unquote

    from pyarrow import fs

    log = f"{table}/_delta_log"
    selector = fs.FileSelector(log, allow_not_found=True)
    commits = sorted(
        i.path for i in filesystem.get_file_info(selector) if _COMMIT.match(i.base_name)
    )
    if not commits or not commits[0].endswith(f"/{0:020d}.json"):
        return None
    paths = set()
    for commit in commits:
        with filesystem.open_input_stream(commit) as stream:
            for line in stream.read().decode().splitlines():
                action = json.loads(line) if line.strip() else {}
                if "add" in action:
                    paths.add(unquote(action["add"]["path"]))
    return paths

"""Content hashes: the one way shipml fingerprints files, records and tables.

Every hash is `sha256:<hex>` so a reader can tell the algorithm from the value.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value).encode())


def sha256_frame(frame: pd.DataFrame) -> str:
    """Hash of a table's content: column names, dtypes and every value, in row order.

    Independent of the file format it came from, so the same rows read from CSV or from a
    Delta snapshot hash the same.
    """
    import pandas as pd

    h = hashlib.sha256()
    h.update(canonical_json([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()


def tree_manifest(folder: str | Path) -> str:
    """Every file under `folder` as `<hex>  <relative path>` lines, sorted by path.

    The format of `sha256sum`, so `sha256sum --check` verifies a copy anywhere (the serving
    image does); `sha256_bytes` of this text is the folder's hash (`tree_hash`).
    """
    root = Path(folder)
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if not p.is_dir()}
    lines = []
    for rel, path in sorted(files.items()):
        if path.is_symlink() or "\n" in rel or "\\" in rel:
            raise ValueError(f"{path}: links and names with newlines or backslashes not hashed")
        lines.append(f"{sha256_file(path).removeprefix('sha256:')}  {rel}\n")
    return "".join(lines)


def tree_hash(folder: str | Path) -> str:
    return sha256_bytes(tree_manifest(folder).encode())

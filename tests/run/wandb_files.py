"""Reads what an offline W&B run wrote: ``<save_dir>/wandb/offline-run-*/run-<id>.wandb``, W&B's
log of protobuf ``Record`` messages in 32 KiB blocks (a 7-byte file header ``:W&B`` + magic +
version; each chunk: CRC32 (4 bytes), length (2, little endian), type (1: full, 2: first,
3: middle, 4: last); a block's last 6 bytes or less are padding)."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


@dataclasses.dataclass
class OfflineRun:
    """The parts of an offline run the tests look at."""

    name: str
    group: str
    metric_keys: set[str]
    #: (name, type, aliases, metadata) of every logged artifact, in order
    artifacts: list[tuple[str, str, list[str], dict]]


def records(path: Path) -> list:
    """The ``wandb_internal_pb2.Record`` messages of ``path``, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, chunks = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pos += HEADER
        chunks += data[pos : pos + length]
        pos += length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(chunks)
            out.append(record)
            chunks = b""
    return out


def offline_run(save_dir: Path) -> OfflineRun:
    """The single offline run under ``save_dir/wandb``."""
    (path,) = (Path(save_dir) / "wandb").glob("offline-run-*/run-*.wandb")
    name = group = ""
    keys: set[str] = set()
    artifacts = []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name, group = record.run.display_name, record.run.run_group
        elif kind == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "artifact":
            a = record.artifact
            meta = json.loads(a.metadata) if a.metadata else {}
            artifacts.append((a.name, a.type, list(a.aliases), meta))
    return OfflineRun(name=name, group=group, metric_keys=keys, artifacts=artifacts)

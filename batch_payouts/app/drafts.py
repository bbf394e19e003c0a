"""Uploaded files waiting to become batches: each in a folder of its own under the console's
uploads folder (mode 0700), with who uploaded it, its label and the column mapping a person
chose. A draft becomes a batch when it is submitted for approval; until then nothing is claimed
in the ledger, and its column mapping can be changed."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from batch_payouts import errors

META = "draft.json"
TOKEN = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Draft:
    """``mapping``: canonical column -> the file's header, as a person chose it (the rest are
    matched automatically); ``created_at`` in epoch seconds; ``batch_id`` once submitted."""

    token: str
    folder: Path
    file: str
    maker: str
    label: str
    created_at: float
    mapping: dict[str, str] = field(default_factory=dict)
    batch_id: str | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.file

    @property
    def name(self) -> str:
        return self.label or self.file


def save(uploads: Path, file: str, content: bytes, *, maker: str, label: str) -> Draft:
    """A new draft of ``content`` named ``file`` (already a safe base name)."""
    token = secrets.token_hex(8)
    folder = uploads / token
    folder.mkdir(parents=True, mode=0o700)
    path = folder / file
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    draft = Draft(token, folder, file, maker, label, time.time())
    _write(draft)
    return draft


def read(uploads: Path, token: str) -> Draft:
    """The draft ``token``; UnknownDraft when there is none (or the id is not one we make)."""
    if not TOKEN.fullmatch(token):
        raise errors.UnknownDraft(token[:40])
    try:
        data = json.loads((uploads / token / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise errors.UnknownDraft(token) from None
    return Draft(
        token,
        uploads / token,
        data["file"],
        data["maker"],
        data["label"],
        data["created_at"],
        dict(data.get("mapping", {})),
        data.get("batch_id"),
    )


def waiting(uploads: Path) -> list[Draft]:
    """Drafts not yet submitted, newest first."""
    if not uploads.is_dir():
        return []
    found = []
    for folder in uploads.iterdir():
        try:
            draft = read(uploads, folder.name)
        except errors.UnknownDraft:
            continue
        if draft.batch_id is None:
            found.append(draft)
    return sorted(found, key=lambda d: d.created_at, reverse=True)


def with_mapping(draft: Draft, mapping: dict[str, str]) -> Draft:
    changed = replace(draft, mapping=dict(mapping))
    _write(changed)
    return changed


def submitted(draft: Draft, batch_id: str) -> Draft:
    done = replace(draft, batch_id=batch_id)
    _write(done)
    return done


def _write(draft: Draft) -> None:
    data = {
        "file": draft.file,
        "maker": draft.maker,
        "label": draft.label,
        "created_at": draft.created_at,
        "mapping": draft.mapping,
        "batch_id": draft.batch_id,
    }
    temporary = draft.folder / (META + ".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(draft.folder / META)

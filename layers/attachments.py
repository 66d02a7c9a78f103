"""Files attached to hazards (photos of the site, PDFs of rectification evidence).

A file is accepted only when its first bytes say it is a JPEG, PNG, WebP or PDF (the name
proves nothing): an executable (``MZ``, ``\\x7fELF``, ``#!``, Mach-O …) is refused by name, any
other content as "not a photo or PDF". The file is stored under a generated name
(``<32 hex>.<ext>`` from its real type) in the attachments folder — ``<store>.attachments/``
beside a GeoPackage, or the configured folder (``RISKMAP_ATTACHMENTS_DIR``, required for a
PostGIS store) — with mode 0o640 (never executable). The uploader's file name is kept only as
metadata, and only when it is a plain name: one with a path (``../../x.png``, ``a/b.jpg``,
``C:\\x.jpg``), control characters or over 200 characters is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from layers.registry import RegistryError

__all__ = [
    "ALLOWED_TYPES",
    "AttachmentRejected",
    "StoredFile",
    "attachment_path",
    "attachments_dir",
    "check_name",
    "sniff",
    "store_file",
]

ALLOWED_TYPES: dict[str, str] = {"image/jpeg": "jpg", "image/png": "png",
                                 "image/webp": "webp", "application/pdf": "pdf"}
_EXECUTABLES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable (MZ header)"),
    (b"\x7fELF", "a Linux executable (ELF header)"),
    (b"#!", "a script (#! header)"),
    (b"\xcf\xfa\xed\xfe", "a macOS executable (Mach-O header)"),
    (b"\xce\xfa\xed\xfe", "a macOS executable (Mach-O header)"),
    (b"\xca\xfe\xba\xbe", "a Java class or macOS universal binary"),
)
_ID = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|pdf)$")
MAX_NAME = 200


class AttachmentRejected(RegistryError):
    """An upload that is not an acceptable attachment (type, name); nothing was stored."""


@dataclass(frozen=True)
class StoredFile:
    """An attachment written to disk: its generated ``id`` (the file name), content type,
    size, SHA-256 and the uploader's (checked) name."""

    id: str
    type: str
    size: int
    sha256: str
    name: str


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show (one of :data:`ALLOWED_TYPES`), or
    None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def check_name(name: str | None) -> str:
    """The uploader's file name if it is a plain name (no folder, no control characters,
    at most 200 characters), NFC-normalised; else AttachmentRejected naming the problem."""
    if name is None or not name.strip():
        raise AttachmentRejected("the upload has no file name; expected a plain name such "
                                 "as 'site-photo.jpg'")
    text = unicodedata.normalize("NFC", name)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise AttachmentRejected("file name contains control characters; expected a plain "
                                 "name such as 'site-photo.jpg'")
    shown = text[:80]
    if "/" in text or "\\" in text or text.strip() in (".", "..") or ":" in text:
        raise AttachmentRejected(f"file name {shown!r} contains a path (/, \\, : or ..); "
                                 "expected a plain name such as 'site-photo.jpg'")
    if len(text) > MAX_NAME:
        raise AttachmentRejected(f"file name is {len(text)} characters long; expected at "
                                 f"most {MAX_NAME}")
    return text.strip()


def _check_content(data: bytes, name: str) -> str:
    for magic, what in _EXECUTABLES:
        if data.startswith(magic):
            raise AttachmentRejected(f"file {name!r} is {what}, not a photo or PDF; refused "
                                     "(the name does not decide the type, the content does)")
    kind = sniff(data[:16])
    if kind is None:
        raise AttachmentRejected(f"file {name!r} is not a JPEG, PNG, WebP photo or a PDF "
                                 f"(its first bytes are {data[:8].hex(' ') or 'empty'}); "
                                 "expected one of those")
    return kind


def attachments_dir(store_path: str | os.PathLike[str] | None,
                    configured: str | os.PathLike[str] | None = None) -> Path:
    """The attachments folder: ``configured`` if given, else ``<store_path>.attachments``
    beside a GeoPackage. A store without a file (PostGIS) needs ``configured``."""
    if configured:
        return Path(configured)
    if store_path is None:
        raise AttachmentRejected("this store keeps no files; set RISKMAP_ATTACHMENTS_DIR to "
                                 "a folder for hazard attachments")
    p = Path(store_path)
    return p.with_name(p.name + ".attachments")


def store_file(folder: str | os.PathLike[str], data: bytes, name: str | None, *,
               max_bytes: int) -> StoredFile:
    """Check ``data`` (size, content, name) and write it under a generated name in
    ``folder`` (created 0o750), mode 0o640. AttachmentRejected (nothing written) otherwise."""
    safe = check_name(name)
    if len(data) > max_bytes:
        raise AttachmentRejected(f"file {safe!r} is {len(data)} bytes; the largest attachment "
                                 f"accepted is {max_bytes} bytes")
    if not data:
        raise AttachmentRejected(f"file {safe!r} is empty")
    kind = _check_content(data, safe)
    root = Path(folder)
    root.mkdir(mode=0o750, parents=True, exist_ok=True)
    aid = f"{secrets.token_hex(16)}.{ALLOWED_TYPES[kind]}"
    fd = os.open(root / aid, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o640)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(root / aid, 0o640)
    except BaseException:
        (root / aid).unlink(missing_ok=True)
        raise
    return StoredFile(id=aid, type=kind, size=len(data),
                      sha256=hashlib.sha256(data).hexdigest(), name=safe)


def attachment_path(folder: str | os.PathLike[str], aid: str) -> Path:
    """The file of attachment ``aid`` in ``folder``; RegistryError for an id that is not one
    this module generates (so no other path can be named)."""
    if not _ID.match(aid):
        raise AttachmentRejected(f"attachment id {aid[:80]!r} is malformed; expected 32 hex "
                                 "digits and .jpg, .png, .webp or .pdf")
    return Path(folder) / aid

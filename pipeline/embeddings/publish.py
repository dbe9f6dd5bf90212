"""Stage 5, publish: copy a snapshot to where the list-building tool reads it (a path, sftp://, s3://,
hdfs://; through fsspec), file by file into `<file>.partial` that a re-run extends from where it stopped
(when `<file>.partial.source` shows it holds the same file; else it starts over), verify every file's
sha256 at the destination, write the manifest, then move `LATEST` (always last), then keep the newest N
snapshots. Layout at the destination: `<to>/<model>/<snapshot>/…` and `<to>/<model>/LATEST`."""

from __future__ import annotations

import errno
import hashlib
import json
import posixpath

from pipeline.embeddings import ChecksumMismatch, EmbeddingError, PublishInterrupted
from pipeline.embeddings.snapshot import MANIFEST
from pipeline.warehouse import filesystem

LATEST = "LATEST"
PARTIAL = ".partial"
SOURCE = ".source"  # beside a partial: the size and sha256 of the file it is a copy of
# what no re-run fixes: a path under a regular file, no permission, a read-only file system
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


def destination(uri: str, ssh_key: str | None = None, option: str = "--to"):
    """(fsspec file system, root path within it) of a destination URI or local path; `option` names it in
    errors (--to, --from)."""
    import fsspec

    options = {"skip_instance_cache": True}  # a connection that dropped must not be handed out again
    if uri.startswith(("sftp://", "ssh://")):
        options |= {"key_filename": ssh_key, "look_for_keys": ssh_key is None, "allow_agent": ssh_key is None,
                   "timeout": 30}
    try:
        fs, root = fsspec.core.url_to_fs(uri, **options)
    except ImportError as exc:
        raise EmbeddingError(f"{option} {redacted(uri)}: this destination needs a package that is not installed "
                             f"({exc})") from None
    except Exception as exc:  # noqa: BLE001 - connection errors of every backend: one line naming the URI
        raise PublishInterrupted(f"{option} {redacted(uri)}: cannot connect: {exc}") from None
    return fs, root.rstrip("/") or "/"


def redacted(uri: str) -> str:
    from sinks.base import redact

    return redact(uri)


def _sha256(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _size(fs, path: str) -> int | None:
    try:
        return int(fs.info(path)["size"])
    except FileNotFoundError:
        return None


def _stamp(expected: dict) -> bytes:
    return json.dumps({"bytes": expected["bytes"], "sha256": expected["sha256"]}, sort_keys=True).encode()


def _resumable(fs, partial: str, start: int, src_fs, src: str, expected: dict) -> bool:
    """Whether a partial is the beginning of this very file (not one of an earlier build of the snapshot)."""
    if start > expected["bytes"]:
        return False
    try:
        return fs.cat_file(partial + SOURCE) == _stamp(expected)
    except FileNotFoundError:  # a partial without its stamp: compare its bytes with the source's first ones
        pass
    copied, original = hashlib.sha256(), hashlib.sha256()
    with fs.open(partial, "rb") as handle:
        while chunk := handle.read(1 << 20):
            copied.update(chunk)
    with src_fs.open_input_file(src) as reader:
        left = start
        while left and (chunk := reader.read(min(left, 1 << 20))):
            original.update(chunk)
            left -= len(chunk)
    return copied.digest() == original.digest()


def _copy(source: str, fs, target: str, expected: dict, chunk_bytes: int) -> int:
    """Copy one file into `target.partial` from where an earlier copy of the same file stopped, then rename
    it to `target`; return the bytes sent now."""
    partial = target + PARTIAL
    src_fs, src = filesystem(source)
    start = _size(fs, partial) or 0
    if start and not _resumable(fs, partial, start, src_fs, src, expected):
        start = 0
    sent = 0
    if not start:
        fs.pipe_file(partial + SOURCE, _stamp(expected))
    try:
        handle = fs.open(partial, "ab" if start else "wb")
    except (NotImplementedError, ValueError):  # a store without append (s3): start this file again
        start, handle = 0, fs.open(partial, "wb")
    with src_fs.open_input_file(src) as reader, handle:
        reader.seek(start)
        while chunk := reader.read(chunk_bytes):
            handle.write(chunk)
            handle.flush()
            sent += len(chunk)
    _replace(fs, partial, target)
    if fs.exists(partial + SOURCE):
        fs.rm(partial + SOURCE)
    return sent


def _replace(fs, source: str, target: str) -> None:
    """Rename over an existing file: one atomic step where the store has it (POSIX rename, SFTP
    posix-rename), so a reader of LATEST never finds it missing; else delete, then rename."""
    try:
        fs.mv(source, target)
    except OSError:
        if not fs.exists(target):
            raise
        fs.rm(target)
        fs.mv(source, target)


def publish(warehouse, snapshot_folder: str, uri: str, keep: int, chunk_bytes: int = 8 << 20,
            ssh_key: str | None = None, say=lambda line: None) -> dict:
    """Copy one built snapshot to `uri`, verify it there, move LATEST, prune; return what was done."""
    manifest_text = warehouse.read_text(f"{snapshot_folder}/{MANIFEST}")
    if manifest_text is None:
        raise EmbeddingError(f"{snapshot_folder}: no {MANIFEST}: not a built snapshot")
    manifest = json.loads(manifest_text)
    model, snapshot = manifest["model"], manifest["snapshot"]
    fs, root = destination(uri, ssh_key)
    shown = redacted(uri)
    folder = posixpath.join(root, model, snapshot)
    sent, skipped = 0, []
    try:
        fs.makedirs(folder, exist_ok=True)
        for relative, expected in sorted(manifest["files"].items()):
            target = posixpath.join(folder, relative)
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            if _size(fs, target) == expected["bytes"]:
                skipped.append(relative)  # copied by an earlier run: verified below like the rest
                continue
            say(f"linkrec: publishing {model}/{snapshot}/{relative} ({expected['bytes']} bytes) to {shown} …")
            sent += _copy(f"{snapshot_folder}/{relative}", fs, target, expected, chunk_bytes)
        wrong = []
        for relative, expected in sorted(manifest["files"].items()):
            target = posixpath.join(folder, relative)
            found = _sha256(fs, target)
            if found != expected["sha256"] and relative in skipped:
                # an earlier copy of the same size but other bytes: copy it again, once
                fs.rm(target)
                sent += _copy(f"{snapshot_folder}/{relative}", fs, target, expected, chunk_bytes)
                found = _sha256(fs, target)
            if found != expected["sha256"]:
                wrong.append(f"{shown}/{model}/{snapshot}/{relative}: sha256 {found[:16]}… at the destination, "
                             f"{expected['sha256'][:16]}… in the manifest")
        if wrong:
            raise ChecksumMismatch("; ".join(wrong) + "; LATEST not moved (if the snapshot's own files changed, "
                                   "rebuild it with `linkrec embeddings build --force`)")
        fs.pipe_file(posixpath.join(folder, MANIFEST), manifest_text.encode("utf-8"))
        latest = posixpath.join(root, model, LATEST)
        previous = fs.cat_file(latest).decode().strip() if fs.exists(latest) else None
        fs.pipe_file(latest + PARTIAL, snapshot.encode("utf-8") + b"\n")
        _replace(fs, latest + PARTIAL, latest)
        removed = prune(fs, posixpath.join(root, model), keep, snapshot)
    except (ChecksumMismatch, EmbeddingError):
        raise
    except Exception as exc:  # noqa: BLE001 - a dropped connection or a full disk: the copy resumes on a re-run
        if isinstance(exc, OSError) and exc.errno in UNWRITABLE:  # no re-run would get further
            where = f" ({exc.filename})" if exc.filename else ""
            raise EmbeddingError(f"--to {shown}: cannot write there{where}: {exc.strerror or exc}; give a "
                                 f"destination this user can write to") from None
        raise PublishInterrupted(f"publishing {model}/{snapshot} to {shown} stopped: {type(exc).__name__}: {exc}; "
                                 f"a re-run resumes from the copied bytes") from exc
    say(f"linkrec: published {model}/{snapshot} to {shown} ({sent} bytes sent, {len(skipped)} files already there"
        f"{', removed ' + ', '.join(removed) if removed else ''}); LATEST → {snapshot}")
    return {"model": model, "snapshot": snapshot, "to": shown, "bytes_sent": sent, "files": len(manifest["files"]),
            "already_there": len(skipped), "previous_latest": previous, "latest": snapshot, "removed": removed}


def prune(fs, model_folder: str, keep: int, latest: str) -> list[str]:
    """Delete all but the newest `keep` snapshot folders (names sort by date); never the LATEST one."""
    names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(model_folder, detail=False)
                   if fs.isdir(p))
    doomed = [n for n in names[:-keep] if n != latest] if len(names) > keep else []
    for name in doomed:
        fs.rm(posixpath.join(model_folder, name), recursive=True)
    return doomed


def latest_snapshot(fs, root: str, model: str) -> str | None:
    path = posixpath.join(root, model, LATEST)
    return fs.cat_file(path).decode().strip() if fs.exists(path) else None

"""One warehouse root for every table: `<root>/<table>/wiki=<wiki>/snapshot=<snapshot>/` Parquet,
plus `<root>/_manifests/<wiki>.json` saying which snapshot is current and where it came from.
The root may be a local path or an hdfs:// / s3a:// URI; file operations go through pyarrow.fs."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.ingest.dumpreader import SiteInfo

DEFAULT_ROOT = "./warehouse"


def resolve_root(option: str | None) -> str:
    root = option or os.environ.get("LINKREC_WAREHOUSE") or DEFAULT_ROOT
    if re.match(r"^[a-z][a-z0-9+.-]*://", root):
        return root.rstrip("/")
    return os.path.abspath(root)


class WarehouseBusy(Exception):
    """Another linkrec process is writing this wiki's tables."""


@contextmanager
def wiki_lock(root: str, wiki: str):
    """Hold the warehouse lock of one wiki for a command's lifetime (an flock: the system drops it when the
    process dies, so no stale lock is left behind). Remote roots rely on the database's lock alone."""
    local = root[len("file://"):] if root.startswith("file://") else None if "://" in root else root
    if local is None:
        yield
        return
    folder = os.path.join(local, "_locks")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{wiki}.lock")
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WarehouseBusy(f"{wiki}: another linkrec run ({holder}) is writing this wiki's tables under "
                                f"{local}; wait for it to end (the lock is {path})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def filesystem(path: str):
    """pyarrow's file system for a warehouse path and the path within it: local, hdfs:// (libhdfs), or
    s3a:// (read as s3://, credentials from the AWS environment as for any pyarrow S3 client)."""
    from pyarrow import fs

    if "://" not in path:
        return fs.LocalFileSystem(), path
    if path.startswith("file://"):
        return fs.LocalFileSystem(), path[len("file://"):]
    return fs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))


class Warehouse:
    """Tables are read with Spark; files (manifests, models, staging folders) are handled with
    pyarrow.fs, so that nothing here needs the JVM and Spark starts only when a table is read.
    `spark` is a SparkSession or a function that makes one."""

    def __init__(self, spark, root: str):
        self._spark = spark
        self.root = root

    @property
    def spark(self):
        if callable(self._spark):
            self._spark = self._spark()
        return self._spark

    def table(self, name: str, wiki: str, snapshot: str) -> str:
        return f"{self.root}/{name}/wiki={wiki}/snapshot={snapshot}"

    def staging(self, name: str, wiki: str, tag: str) -> str:
        # names starting with "_" are invisible to Spark's partition discovery
        return f"{self.root}/{name}/wiki={wiki}/_staging-{tag}"

    def _info(self, path: str):
        fs, inner = filesystem(path)
        return fs, inner, fs.get_file_info(inner)

    def exists(self, path: str) -> bool:
        from pyarrow.fs import FileType

        return self._info(path)[2].type != FileType.NotFound

    def delete(self, path: str) -> None:
        from pyarrow.fs import FileType

        fs, inner, info = self._info(path)
        if info.type == FileType.Directory:
            fs.delete_dir(inner)
        elif info.type != FileType.NotFound:
            fs.delete_file(inner)

    def move(self, source: str, target: str) -> None:
        """Replace `target` by `source` (a directory rename; copy and delete where the store cannot rename)."""
        import pyarrow as pa
        from pyarrow import fs as pafs

        self.delete(target)
        fs, src = filesystem(source)
        _, dst = filesystem(target)
        fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
        try:
            fs.move(src, dst)
        except (pa.ArrowNotImplementedError, OSError):
            pafs.copy_files(src, dst, source_filesystem=fs, destination_filesystem=fs)
            fs.delete_dir(src)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def write_bytes(self, path: str, data: bytes) -> None:
        from pyarrow.fs import LocalFileSystem

        fs, inner = filesystem(path)
        if isinstance(fs, LocalFileSystem):
            os.makedirs(os.path.dirname(inner), exist_ok=True)
            with open(inner + ".tmp", "wb") as handle:
                handle.write(data)
            os.replace(inner + ".tmp", inner)  # readers never see half a file
            return
        fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(inner) as stream:
            stream.write(data)

    def read_bytes(self, path: str) -> bytes | None:
        from pyarrow.fs import FileType

        fs, inner, info = self._info(path)
        if info.type != FileType.File:
            return None
        with fs.open_input_stream(inner) as stream:
            return stream.read()

    def read_text(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8")

    def manifest_path(self, wiki: str) -> str:
        return f"{self.root}/_manifests/{wiki}.json"

    def manifest(self, wiki: str) -> dict | None:
        text = self.read_text(self.manifest_path(wiki))
        return json.loads(text) if text else None

    def save_manifest(self, wiki: str, manifest: dict) -> None:
        self.write_text(self.manifest_path(wiki), json.dumps(manifest, indent=2, ensure_ascii=False,
                                                             sort_keys=True))

    def _entries(self, path: str):
        from pyarrow.fs import FileSelector, FileType

        fs, inner, info = self._info(path)
        if info.type != FileType.Directory:
            return []
        prefix = path[: len(path) - len(inner)] if path.endswith(inner) else ""
        return [(entry.mtime_ns or 0, prefix + entry.path) for entry in fs.get_file_info(FileSelector(inner))]

    def list(self, path: str) -> list[str]:
        """The entries of a folder, as full paths; [] when it is missing."""
        return sorted(name for _, name in self._entries(path))

    def list_by_age(self, path: str) -> list[str]:
        """The entries of a folder, oldest first (modification time, then name); [] when it is missing."""
        return [name for _, name in sorted(self._entries(path))]

    def read(self, name: str, wiki: str, snapshot: str):
        return self.spark.read.parquet(self.table(name, wiki, snapshot))

    def put_dir(self, local_dir: str, target: str) -> None:
        """Copy a local folder to `target` (replacing it), wherever the warehouse lives."""
        from pyarrow import fs as pafs

        self.delete(target)
        fs, inner = filesystem(target)
        fs.create_dir(inner, recursive=True)
        pafs.copy_files(local_dir, inner, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


class NotIngested(Exception):
    """A wiki has no current snapshot in this warehouse."""


def current_snapshot(warehouse, wiki: str) -> str:
    manifest = warehouse.manifest(wiki)
    if not manifest or "current_snapshot" not in manifest:
        raise NotIngested(f"{wiki}: nothing ingested under {warehouse.root}; ingest it first: `linkrec ingest --wiki "
                          f"{wiki} --dump DUMP` (or `linkrec run --wiki {wiki} --dump DUMP`)")
    return manifest["current_snapshot"]


def siteinfo_of(warehouse, wiki: str, snapshot: str) -> SiteInfo:
    from pipeline.ingest.dumpreader import SiteInfo

    text = warehouse.read_text(f"{warehouse.root}/siteinfo/wiki={wiki}/snapshot={snapshot}/siteinfo.json")
    return SiteInfo.from_json(json.loads(text)) if text else SiteInfo(wiki, "", "", "", "first-letter", "", "")

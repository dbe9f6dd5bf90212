"""One warehouse root for every table: `<root>/<table>/wiki=<wiki>/snapshot=<snapshot>/` Parquet,
plus `<root>/_manifests/<wiki>.json` saying which snapshot is current and where it came from.
The root may be a local path or an hdfs:// / s3a:// URI; file operations go through Hadoop."""

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


class Warehouse:
    def __init__(self, spark, root: str):
        self.spark = spark
        self.root = root
        jvm = spark.sparkContext._jvm
        self._Path = jvm.org.apache.hadoop.fs.Path
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def table(self, name: str, wiki: str, snapshot: str) -> str:
        return f"{self.root}/{name}/wiki={wiki}/snapshot={snapshot}"

    def staging(self, name: str, wiki: str, tag: str) -> str:
        # names starting with "_" are invisible to Spark's partition discovery
        return f"{self.root}/{name}/wiki={wiki}/_staging-{tag}"

    def _fs(self, path: str):
        hadoop_path = self._Path(path)
        return hadoop_path.getFileSystem(self._conf), hadoop_path

    def exists(self, path: str) -> bool:
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def delete(self, path: str) -> None:
        fs, p = self._fs(path)
        if fs.exists(p):
            fs.delete(p, True)

    def move(self, source: str, target: str) -> None:
        """Replace `target` by `source` (a directory rename)."""
        self.delete(target)
        fs, src = self._fs(source)
        _, dst = self._fs(target)
        fs.mkdirs(dst.getParent())
        if not fs.rename(src, dst):
            raise OSError(f"cannot move {source} to {target}")

    @staticmethod
    def _local(path: str) -> str | None:
        """The file-system path when `path` is local (plain I/O: no Hadoop .crc side files to go stale)."""
        if "://" not in path:
            return path
        return path[len("file://"):] if path.startswith("file://") else None

    def write_text(self, path: str, text: str) -> None:
        local = self._local(path)
        if local is not None:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(local + ".tmp", local)  # readers never see half a file
            return
        fs, p = self._fs(path)
        stream = fs.create(p, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def read_text(self, path: str) -> str | None:
        local = self._local(path)
        if local is not None:
            try:
                with open(local, encoding="utf-8") as handle:
                    return handle.read()
            except FileNotFoundError:
                return None
        fs, p = self._fs(path)
        if not fs.exists(p):
            return None
        stream = fs.open(p)
        try:
            reader = self.spark.sparkContext._jvm.java.io.BufferedReader(
                self.spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            while (line := reader.readLine()) is not None:
                lines.append(line)
            return "\n".join(lines)
        finally:
            stream.close()

    def manifest_path(self, wiki: str) -> str:
        return f"{self.root}/_manifests/{wiki}.json"

    def manifest(self, wiki: str) -> dict | None:
        text = self.read_text(self.manifest_path(wiki))
        return json.loads(text) if text else None

    def save_manifest(self, wiki: str, manifest: dict) -> None:
        self.write_text(self.manifest_path(wiki), json.dumps(manifest, indent=2, ensure_ascii=False,
                                                             sort_keys=True))

    def list(self, path: str) -> list[str]:
        """The entries of a folder, as full paths."""
        fs, p = self._fs(path)
        return [str(status.getPath().toString()) for status in fs.listStatus(p)]

    def list_by_age(self, path: str) -> list[str]:
        """The entries of a folder, oldest first (modification time, then name); [] when it is missing."""
        fs, p = self._fs(path)
        if not fs.exists(p):
            return []
        entries = [(status.getModificationTime(), str(status.getPath().toString())) for status in fs.listStatus(p)]
        return [path for _, path in sorted(entries)]

    def read(self, name: str, wiki: str, snapshot: str):
        return self.spark.read.parquet(self.table(name, wiki, snapshot))

    def put_dir(self, local_dir: str, target: str) -> None:
        """Copy a local folder to `target` (replacing it), wherever the warehouse lives."""
        self.delete(target)
        fs, dst = self._fs(target)
        fs.mkdirs(dst.getParent())
        fs.copyFromLocalFile(False, True, self._Path(local_dir), dst)

    def read_bytes(self, path: str) -> bytes | None:
        fs, p = self._fs(path)
        if not fs.exists(p):
            return None
        if p.toUri().getScheme() in (None, "file"):
            with open(p.toUri().getPath(), "rb") as handle:
                return handle.read()
        import tempfile
        with tempfile.TemporaryDirectory() as local:
            copy = os.path.join(local, "copy")
            fs.copyToLocalFile(False, p, self._Path(copy), True)
            with open(copy, "rb") as handle:
                return handle.read()


class NotIngested(Exception):
    """A wiki has no current snapshot in this warehouse."""


def current_snapshot(warehouse, wiki: str) -> str:
    manifest = warehouse.manifest(wiki)
    if not manifest or "current_snapshot" not in manifest:
        raise NotIngested(f"{wiki}: nothing ingested under {warehouse.root}; run `linkrec ingest --wiki {wiki}` first")
    return manifest["current_snapshot"]


def siteinfo_of(warehouse, wiki: str, snapshot: str) -> SiteInfo:
    from pipeline.ingest.dumpreader import SiteInfo

    text = warehouse.read_text(f"{warehouse.root}/siteinfo/wiki={wiki}/snapshot={snapshot}/siteinfo.json")
    return SiteInfo.from_json(json.loads(text)) if text else SiteInfo(wiki, "", "", "", "first-letter", "", "")

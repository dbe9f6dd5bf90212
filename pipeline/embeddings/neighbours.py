"""`linkrec neighbours`: the articles most similar to one article, from a published snapshot (its
`LATEST`) or, where nothing is published, the newest snapshot built in the warehouse. The vectors are
scanned with a filter (never loaded whole); the index is memory-mapped."""

from __future__ import annotations

import json
import os
import posixpath
import tempfile

import numpy as np

from pipeline.embeddings import EmbeddingError, ann
from pipeline.embeddings.publish import destination, latest_snapshot
from pipeline.embeddings.snapshot import INDEX_FILE, MANIFEST


class Snapshot:
    """A snapshot folder read through fsspec: its manifest, vectors (scanned) and index (a local copy)."""

    def __init__(self, fs, folder: str):
        self.fs, self.folder = fs, folder
        try:
            self.manifest = json.loads(fs.cat_file(posixpath.join(folder, MANIFEST)))
        except FileNotFoundError:
            raise EmbeddingError(f"{folder}: no {MANIFEST}: not a complete snapshot") from None
        vector_files = sorted(f for f in self.manifest["files"] if f.startswith("vectors/"))
        import pyarrow.dataset as ds

        self.vectors = ds.dataset([posixpath.join(folder, f) for f in vector_files], format="parquet", filesystem=fs)
        self._index = None

    def rows(self, expression) -> list[dict]:
        return self.vectors.to_table(filter=expression).to_pylist()

    def index(self):
        if self._index is None:
            path = posixpath.join(self.folder, INDEX_FILE)
            settings = ann.IndexSettings(**{k: v for k, v in self.manifest["index"].items()
                                            if k in ann.IndexSettings.__dataclass_fields__})
            from fsspec.implementations.local import LocalFileSystem

            if isinstance(self.fs, LocalFileSystem):
                self._index = ann.load_index(path, settings)
            else:  # a remote index is fetched once into the user's cache, named by its checksum
                digest = self.manifest["files"][INDEX_FILE]["sha256"]
                cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "linkrec")
                os.makedirs(cache, exist_ok=True)
                local = os.path.join(cache, f"{digest}.usearch")
                if not os.path.exists(local):
                    with tempfile.NamedTemporaryFile(dir=cache, delete=False) as handle:
                        self.fs.get_file(path, handle.name)
                    os.replace(handle.name, local)
                self._index = ann.load_index(local, settings)
        return self._index


def open_snapshot(model: str, source: str | None, warehouse, ssh_key: str | None = None) -> Snapshot:
    """The snapshot `LATEST` names at `source`; without a source, the newest one built in the warehouse."""
    from pipeline.embeddings.snapshot import local_snapshots, snapshots_root

    if source:
        fs, root = destination(source, ssh_key, "--from")
        snapshot = latest_snapshot(fs, root, model)
        if snapshot is None:
            raise EmbeddingError(f"{source}: no {model}/LATEST: nothing published for {model} there")
        return Snapshot(fs, posixpath.join(root, model, snapshot))
    built = local_snapshots(warehouse, model)
    if not built:
        raise EmbeddingError(f"{model}: no embeddings built under {warehouse.root}; run `linkrec embeddings build` "
                             f"first (or give --from URI)")
    fs, root = destination(snapshots_root(warehouse))
    return Snapshot(fs, posixpath.join(root, model, built[-1]))


def neighbours(snapshot: Snapshot, title: str, k: int, normalise=lambda t: t) -> dict:
    """{"title", "page_id", "snapshot", "neighbours": [{"title", "page_id", "similarity"}, …]} best first."""
    import pyarrow.dataset as ds

    found = snapshot.rows(ds.field("title").isin(sorted({title, normalise(title)})))
    if not found:
        raise EmbeddingError(f"{title!r}: no such article with a vector in {snapshot.manifest['model']}/"
                             f"{snapshot.manifest['snapshot']} (a redirect, a missing page, or an article "
                             f"without out-links to other articles)")
    query = found[0]
    hits = [(pid, sim) for pid, sim in ann.search(snapshot.index(), np.asarray(query["vector"], np.float32), k + 1)
            if pid != query["page_id"]][:k]
    titles = {r["page_id"]: r["title"] for r in snapshot.rows(ds.field("page_id").isin([p for p, _ in hits]))}
    return {"title": query["title"], "page_id": query["page_id"], "snapshot": snapshot.manifest["snapshot"],
            "model": snapshot.manifest["model"],
            "neighbours": [{"title": titles.get(pid), "page_id": pid, "similarity": round(sim, 4)}
                           for pid, sim in hits]}

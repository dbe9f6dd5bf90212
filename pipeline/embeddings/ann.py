"""Stage 4, the nearest-neighbour index: usearch's HNSW over cosine similarity with quantised vectors (the
comparison that chose it is benchmarks/ann.py and the README). Labels are page ids. The index is one file
that its builder holds whole, so it is built here, streaming the vectors table in batches (never through
a Spark collect), and its size is bounded by the vectors' own (f16 at 100 dimensions: 0.87 of the float32
vectors)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import EmbeddingsConfig

BATCH_ROWS = 65536


@dataclass(frozen=True)
class IndexSettings:
    dimensions: int
    quantisation: str = "f16"
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64

    @classmethod
    def of(cls, settings: EmbeddingsConfig) -> IndexSettings:
        return cls(settings.dimensions, settings.index_quantisation, settings.index_connectivity,
                   settings.index_expansion_add, settings.index_expansion_search)

    def to_dict(self) -> dict:
        return {"library": "usearch", "metric": "cos", "dimensions": self.dimensions,
                "quantisation": self.quantisation, "connectivity": self.connectivity,
                "expansion_add": self.expansion_add, "expansion_search": self.expansion_search}


def new_index(settings: IndexSettings):
    from usearch.index import Index

    return Index(ndim=settings.dimensions, metric="cos", dtype=settings.quantisation,
                 connectivity=settings.connectivity, expansion_add=settings.expansion_add,
                 expansion_search=settings.expansion_search)


def vector_batches(dataset, columns=("page_id", "vector")):
    """(page ids, float32 matrix) per batch of a vectors table with a vector (pyarrow dataset)."""
    import pyarrow.compute as pc

    for batch in dataset.to_batches(columns=list(columns), batch_size=BATCH_ROWS, filter=pc.field("vector").is_valid()):
        if batch.num_rows == 0:
            continue
        ids = batch.column("page_id").to_numpy().astype(np.uint64)
        flat = batch.column("vector").flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        yield ids, flat.reshape(batch.num_rows, -1)


def build_index(dataset, settings: IndexSettings, path: str, progress=None) -> int:
    """Add every vector of the table, in its order (a fixed order gives the same index), save to `path`;
    return the number of vectors. Insertion runs on one thread so that two builds are identical."""
    index = new_index(settings)
    count = 0
    for ids, matrix in vector_batches(dataset):
        index.add(ids, matrix, threads=1)
        count += len(ids)
        if progress:
            progress.advance(len(ids))
    index.save(path)
    return count


def load_index(path: str, settings: IndexSettings, view: bool = True):
    """A saved index, memory-mapped (view) so that a query needs no more than the pages it touches."""
    index = new_index(settings)
    if view:
        index.view(path)
    else:
        index.load(path)
    return index


def search(index, vector, k: int) -> list[tuple[int, float]]:
    """(page id, cosine similarity) of the k nearest, best first."""
    found = index.search(np.asarray(vector, dtype=np.float32), k)
    return [(int(key), float(1.0 - distance)) for key, distance in zip(found.keys, found.distances, strict=True)]


def exact_neighbours(matrix: np.ndarray, queries: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Row numbers of the k most similar rows of `matrix` (L2-normalised) for each query, by brute force."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start:start + block] @ matrix.T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return out

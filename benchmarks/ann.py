"""Nearest-neighbour index comparison for the embeddings (README table): recall@10 against exact cosine
search, index bytes / float32 vector bytes, build time, single-query latency p50/p99, for usearch,
faiss, hnswlib and annoy (pip install -e '.[bench]').

    python benchmarks/ann.py --vectors WAREHOUSE/embeddings/ltgwiki-links/20170901/vectors
    python benchmarks/ann.py --synthetic 200000 --dimensions 100

Recall counts a result as found when it is at least as similar as the exact k-th neighbour (ties).
--synthetic N: N L2-normalised vectors drawn around 2,000 centres with spreads of their own (the shape of
real article vectors: topical clusters of uneven tightness), seeded. Figures, not tests."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.embeddings.ann import exact_neighbours  # noqa: E402

K = 10


def synthetic(n: int, dimensions: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dimensions)).astype(np.float32)
    spread = rng.uniform(0.3, 1.5, 2000).astype(np.float32)
    which = rng.integers(0, 2000, n)
    x = centres[which] + spread[which, None] * rng.standard_normal((n, dimensions)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def real(folder: str) -> np.ndarray:
    import pyarrow.dataset as ds

    table = ds.dataset(folder, format="parquet").to_table(columns=["vector"])
    x = np.asarray(table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False), np.float32)
    return x.reshape(table.num_rows, -1)


def file_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*")) if os.path.isdir(path) else os.path.getsize(path)


def usearch_index(dtype):
    def build(x, path):
        from usearch.index import Index
        index = Index(ndim=x.shape[1], metric="cos", dtype=dtype, connectivity=16, expansion_add=128,
                      expansion_search=64)
        index.add(np.arange(len(x), dtype=np.uint64), x, threads=os.cpu_count())
        index.save(path)
        return lambda q: index.search(q, K).keys.astype(np.int64)
    return build


def faiss_index(kind):
    def build(x, path):
        import faiss
        d = x.shape[1]
        if kind == "hnsw_flat":
            index = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
        elif kind == "hnsw_sq8":
            index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 16, faiss.METRIC_INNER_PRODUCT)
        else:  # ivf_pq: 25 sub-quantisers of 8 bits, nlist by size
            nlist = max(16, int(4 * np.sqrt(len(x))))
            index = faiss.index_factory(d, f"IVF{nlist},PQ{d // 4}x8", faiss.METRIC_INNER_PRODUCT)
        if hasattr(index, "hnsw"):
            index.hnsw.efConstruction = 128
            index.hnsw.efSearch = 64
        if not index.is_trained:
            index.train(x)
        index.add(x)
        if hasattr(index, "nprobe"):
            index.nprobe = 32
        faiss.write_index(index, path)
        return lambda q: index.search(q[None, :], K)[1][0]
    return build


def hnswlib_index(x, path):
    import hnswlib
    index = hnswlib.Index(space="cosine", dim=x.shape[1])
    index.init_index(max_elements=len(x), ef_construction=128, M=16, random_seed=1)
    index.add_items(x, np.arange(len(x)))
    index.set_ef(64)
    index.save_index(path)
    return lambda q: index.knn_query(q, k=K)[0][0].astype(np.int64)


def annoy_index(x, path):
    from annoy import AnnoyIndex
    index = AnnoyIndex(x.shape[1], "angular")
    for i, v in enumerate(x):
        index.add_item(i, v)
    index.set_seed(1)
    index.build(50)
    index.save(path)
    return lambda q: np.asarray(index.get_nns_by_vector(q, K), np.int64)


CANDIDATES = {
    "usearch HNSW i8": usearch_index("i8"), "usearch HNSW f16": usearch_index("f16"),
    "usearch HNSW f32": usearch_index("f32"), "faiss HNSW flat": faiss_index("hnsw_flat"),
    "faiss HNSW SQ8": faiss_index("hnsw_sq8"), "faiss IVF-PQ": faiss_index("ivf_pq"),
    "hnswlib HNSW": hnswlib_index, "annoy (50 trees)": annoy_index,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", help="A snapshot's vectors folder (Parquet).")
    parser.add_argument("--synthetic", type=int, help="N synthetic vectors instead.")
    parser.add_argument("--dimensions", type=int, default=100)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--only", nargs="*", help="Names (substrings) of the candidates to run.")
    args = parser.parse_args()
    x = real(args.vectors) if args.vectors else synthetic(args.synthetic, args.dimensions)
    rng = np.random.default_rng(1)
    queries = x[rng.choice(len(x), min(args.queries, len(x)), replace=False)]
    truth = exact_neighbours(x, queries, K)
    vector_bytes = x.nbytes
    print(f"{len(x)} vectors × {x.shape[1]} dimensions ({vector_bytes / 1e6:.1f} MB as float32), "
          f"{len(queries)} queries", flush=True)
    rows = []
    for name, build in CANDIDATES.items():
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "index")
                started = time.perf_counter()
                query = build(x, path)
                build_s = time.perf_counter() - started
                size = file_bytes(path)
                latencies, hits = [], 0
                for q, expected in zip(queries, truth, strict=True):
                    t = time.perf_counter()
                    found = query(q)
                    latencies.append(time.perf_counter() - t)
                    # tie-aware: a hit is any result at least as similar as the exact k-th (articles with
                    # the same out-links have the same vector, so the exact top k is not one set)
                    kth = float(x[expected[-1]] @ q) - 1e-5
                    hits += min(K, int(np.sum(x[np.asarray(found, np.int64)[found >= 0]] @ q >= kth)))
        except ImportError as exc:
            print(f"{name}: not installed ({exc})")
            continue
        row = {"index": name, "recall_at_10": round(hits / (K * len(queries)), 4),
               "index_over_vectors": round(size / vector_bytes, 3), "build_s": round(build_s, 2),
               "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
               "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| index | recall@10 | index / vectors | build s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['index']} | {r['recall_at_10']:.3f} | {r['index_over_vectors']:.2f} | {r['build_s']} | "
              f"{r['p50_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    main()

"""Monthly article embeddings: documents → Word2Vec in Spark → article vectors → a nearest-neighbour
index → a versioned snapshot, published with checksums (`linkrec embeddings`, `linkrec neighbours`)."""


class EmbeddingError(Exception):
    """An input or a snapshot that cannot be used as it is (the command line exits 1)."""


class PublishInterrupted(Exception):
    """A copy stopped part-way; the destination keeps what was copied and a re-run resumes (exit 3)."""


class ChecksumMismatch(EmbeddingError):
    """A copied file differs from its manifest: `LATEST` stays where it was (exit 1)."""


KINDS = ("links", "reading")


def model_name(wiki: str, kind: str) -> str:
    return f"{wiki}-{kind}"

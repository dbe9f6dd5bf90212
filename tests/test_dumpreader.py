"""The dump reader on real dumps, without Spark: counts, truncation, splitting, bad input."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zlib

import pytest

from pipeline.ingest.dumpreader import (
    DumpError,
    Page,
    Problem,
    detect_format,
    plan_chunks,
    read_chunk,
    read_siteinfo,
)
from tests.conftest import DUMPS, TRUNCATED
from tests.independent_count import count_pages


def read_all(path, chunk_bytes=1 << 30, index=None):
    pages, problems = [], []
    chunks = plan_chunks(str(path), chunk_bytes, index)
    for chunk in chunks:
        for record in read_chunk(chunk, path.name):
            (pages if isinstance(record, Page) else problems).append(record)
    return pages, problems, chunks


@pytest.mark.parametrize("wiki", sorted(DUMPS))
def test_every_complete_page_is_read_and_truncation_reported(wiki):
    path = DUMPS[wiki]
    expected = count_pages(path)
    pages, problems, _ = read_all(path)
    assert [p.page_id for p in pages] == expected["ids"]
    per_namespace = {}
    for page in pages:
        per_namespace[str(page.namespace)] = per_namespace.get(str(page.namespace), 0) + 1
    assert per_namespace == expected["per_namespace"]
    assert sum(p.namespace == 0 and p.redirect_target is None for p in pages) == expected["ns0_articles"]
    if wiki in TRUNCATED:
        assert expected["truncated"]
        assert len(problems) == 1 and problems[0].kind == "truncated"
        # the cut page is named, and it is not one of the pages kept
        assert problems[0].title and problems[0].page_id not in {p.page_id for p in pages}
        assert "decompressed byte" in problems[0].where
    else:
        assert problems == []


def test_siteinfo_of_each_dump():
    for wiki, path in DUMPS.items():
        info = read_siteinfo(str(path))
        assert info.dbname == wiki
        assert info.case == "first-letter"
        assert info.namespaces[0] == ""
    hy = read_siteinfo(str(DUMPS["hywiki"]))
    assert hy.language == "hy" and hy.namespaces[14] == "Կատեգորիա"
    assert read_siteinfo(str(DUMPS["jawiki"])).export_version == "0.10"


def test_page_fields_from_a_real_page():
    pages, _, _ = read_all(DUMPS["enwiki"])
    first = pages[0]
    assert first.title == "AccessibleComputing" and first.page_id == 10
    assert first.redirect_target == "Computer accessibility"
    anarchism = next(p for p in pages if p.title == "Anarchism")
    assert anarchism.namespace == 0 and anarchism.redirect_target is None
    assert anarchism.revision_timestamp.tzinfo is not None
    assert "'''Anarchism''' is" in anarchism.wikitext


@pytest.fixture(scope="module")
def enwiki_xml(tmp_path_factory) -> tuple[bytes, list[bytes], bytes]:
    """The real enwiki sample cut into header, raw <page> elements and footer."""
    data = bz2.decompress(DUMPS["enwiki"].read_bytes())
    starts = [m.start() for m in re.finditer(rb"  <page>", data)]
    header = data[:starts[0]]
    footer_at = data.rindex(b"</mediawiki>")
    pages = [data[a:b] for a, b in zip(starts, starts[1:] + [footer_at], strict=True)]
    return header, pages, data[footer_at:]


def write_multistream(path, header, pages, footer, per_stream=20, split_pages=False):
    """A multistream bz2 built like Wikimedia's (header stream, N pages per stream, footer stream),
    with its index; `split_pages` cuts streams mid-page the way pbzip2 does."""
    index_lines = []
    with open(path, "wb") as out:
        out.write(bz2.compress(header))
        if split_pages:
            body = b"".join(pages)
            for at in range(0, len(body), 50_000):
                out.write(bz2.compress(body[at:at + 50_000]))
        else:
            for at in range(0, len(pages), per_stream):
                offset = out.tell()
                group = pages[at:at + per_stream]
                for raw in group:
                    page_id = re.search(rb"<id>(\d+)</id>", raw).group(1).decode()
                    title = re.search(rb"<title>([^<]*)</title>", raw).group(1).decode()
                    index_lines.append(f"{offset}:{page_id}:{title}")
                out.write(bz2.compress(b"".join(group)))
        out.write(bz2.compress(footer))
    index = path.with_name(path.name + "-index.txt.bz2")
    index.write_bytes(bz2.compress(("\n".join(index_lines) + "\n").encode()))
    return index


def test_multistream_bz2_is_read_in_parallel_chunks(tmp_path, enwiki_xml):
    header, pages, footer = enwiki_xml
    path = tmp_path / "enwiki-20990101-pages-articles-multistream.xml.bz2"
    index = write_multistream(path, header, pages, footer)
    whole, _, _ = read_all(DUMPS["enwiki"])
    for index_path in (None, str(index)):
        read, problems, chunks = read_all(path, chunk_bytes=100_000, index=index_path)
        assert len(chunks) > 5
        assert {c.kind for c in chunks} == {"bz2-streams"}
        assert problems == []
        assert read == whole


def test_streams_cut_mid_page_still_give_every_page(tmp_path, enwiki_xml):
    header, pages, footer = enwiki_xml
    path = tmp_path / "pbzip2-style.xml.bz2"
    write_multistream(path, header, pages, footer, split_pages=True)
    whole, _, _ = read_all(DUMPS["enwiki"])
    read, problems, chunks = read_all(path, chunk_bytes=60_000)
    assert len(chunks) > 5 and problems == []
    assert read == whole


def test_plain_xml_is_split_by_byte_range(tmp_path, enwiki_xml):
    header, pages, footer = enwiki_xml
    path = tmp_path / "enwiki.xml"
    path.write_bytes(header + b"".join(pages) + footer)
    whole, _, _ = read_all(DUMPS["enwiki"])
    read, problems, chunks = read_all(path, chunk_bytes=250_000)
    assert len(chunks) > 10 and {c.kind for c in chunks} == {"xml-range"}
    assert problems == [] and read == whole


def test_truncated_multistream_keeps_complete_pages(tmp_path, enwiki_xml):
    header, pages, footer = enwiki_xml
    path = tmp_path / "cut.xml.bz2"
    write_multistream(path, header, pages, footer)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    read, problems, _ = read_all(path, chunk_bytes=100_000)
    whole, _, _ = read_all(DUMPS["enwiki"])
    assert 0 < len(read) < len(whole)
    assert read == whole[: len(read)]
    assert [p.kind for p in problems] == ["truncated"]
    assert "bz2 stream at byte" in problems[0].where


def test_malformed_page_is_reported_and_the_others_kept(tmp_path, enwiki_xml):
    header, pages, footer = enwiki_xml
    broken = pages[3].replace(b"</title>", b"</titel>", 1)
    path = tmp_path / "malformed.xml"
    path.write_bytes(header + b"".join(pages[:3]) + broken + b"".join(pages[4:10]) + footer)
    read, problems, _ = read_all(path)
    assert len(read) == 9
    assert len(problems) == 1
    problem = problems[0]
    assert problem.kind == "malformed" and "malformed XML" in problem.reason
    assert problem.page_id == int(re.search(rb"<id>(\d+)</id>", pages[3]).group(1))
    assert problem.describe().startswith("malformed.xml: byte ")


def test_xml_cut_between_pages_is_a_truncation(tmp_path, enwiki_xml):
    header, pages, _ = enwiki_xml
    path = tmp_path / "cut.xml.xz"
    path.write_bytes(lzma.compress(header + b"".join(pages[:5])))
    read, problems, _ = read_all(path)
    assert len(read) == 5
    assert [p.reason for p in problems] == ["the dump ends without </mediawiki> (truncated input)"]


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"PK\x03\x04 not a dump", "not a MediaWiki XML dump"),
    (b"<html><body>Not found</body></html>", "no <mediawiki><siteinfo> header"),
])
def test_unreadable_inputs_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "input.xml"
    path.write_bytes(content)
    with pytest.raises(DumpError, match=message) as info:
        detect_format(str(path))
        read_siteinfo(str(path))
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(DumpError, match="no such file"):
        detect_format("/nonexistent/enwiki.xml.bz2")


def test_problem_names_file_position_and_page():
    problem = Problem("x.xml", "byte 12", "bad", "malformed", "Foo", 7)
    assert problem.describe() == "x.xml: byte 12: page 'Foo' (id 7) bad"


def test_a_file_an_executor_cannot_see_is_reported_as_unreadable_not_truncated(tmp_path):
    from pipeline.ingest.dumpreader import Chunk
    from pipeline.ingest.job import UNREADABLE, _pages_of_chunk

    class Collected:
        def __init__(self):
            self.value = []

        def add(self, found):
            self.value.extend(found)

    problems = Collected()
    missing = tmp_path / "elsewhere" / "ltgwiki-20170901-pages-articles.xml.bz2"
    assert list(_pages_of_chunk(Chunk(str(missing), "bz2", "whole", 0, 1), missing.name, problems)) == []
    (problem,) = problems.value
    assert problem["kind"] == UNREADABLE and "truncated" not in problem["reason"]
    assert str(missing) in problem["reason"] and "No such file or directory" in problem["reason"]


ONE_SHOT = {"bz2": lambda: bz2.BZ2Decompressor(), "xz": lambda: lzma.LZMADecompressor(),
            "gz": lambda: zlib.decompressobj(wbits=31)}


@pytest.mark.parametrize("fmt, fraction", [("bz2", 0.5), ("xz", 0.5), ("gz", 0.37), ("gz", 0.61)])
def test_a_dump_cut_inside_a_compressed_block_keeps_every_complete_page(tmp_path, fmt, fraction):
    xml = bz2.decompress(DUMPS["ltgwiki"].read_bytes()) if fmt != "xz" else lzma.decompress(
        DUMPS["mrwiki"].read_bytes())
    compressed = {"bz2": bz2.compress, "xz": lambda data: lzma.compress(data, preset=1), "gz": gzip.compress}[fmt](xml)
    cut = compressed[: int(len(compressed) * fraction)]
    path = tmp_path / f"cut.xml.{fmt}"
    path.write_bytes(cut)
    # the pages an independent reader finds in everything the cut bytes can give
    prefix = tmp_path / "prefix.xml"
    prefix.write_bytes(ONE_SHOT[fmt]().decompress(cut))
    expected = count_pages(prefix)["ids"]
    read, problems, _ = read_all(path)
    assert expected and [p.page_id for p in read] == expected
    assert [p.kind for p in problems] == ["truncated"]
    (problem,) = problems
    assert problem.title or f"after {read[-1].title!r}" in problem.reason  # the cut page is named
    assert "decompressed byte" in problem.where and f"inside a {fmt} stream" in problem.reason

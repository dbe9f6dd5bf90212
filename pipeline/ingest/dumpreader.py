"""Reading MediaWiki XML dumps into page records, in plain Python (each Spark task calls this).

A dump is read as a sequence of `<page>…</page>` elements: those tags never occur literally inside
page text (XML escapes `<`), so pages can be cut out of a byte stream and parsed one by one. That
makes reading splittable (plain XML by byte range, multistream bz2 by stream) and lets a malformed
or truncated page be reported while every complete page is kept.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

READ_BLOCK = 1 << 20
PAGE_OPEN = b"<page>"
PAGE_CLOSE = b"</page>"
DOC_CLOSE = b"</mediawiki>"
# a bz2 stream starts byte-aligned with "BZh" + block size + the block magic 0x314159265359
BZ2_STREAM_START = re.compile(rb"BZh[1-9]1AY&SY")


class DumpError(Exception):
    """The input cannot be read as a dump at all (missing, empty, not XML, no siteinfo)."""


@dataclass(frozen=True)
class Page:
    page_id: int
    namespace: int
    title: str
    redirect_target: str | None
    revision_id: int
    revision_timestamp: datetime
    wikitext: str


@dataclass(frozen=True)
class Problem:
    """A page or a part of the input that could not be read; `where` says where in the input."""

    file: str
    where: str
    reason: str
    kind: str  # "truncated" or "malformed"
    title: str | None = None
    page_id: int | None = None

    def describe(self) -> str:
        page = ""
        if self.title is not None or self.page_id is not None:
            page = f" page {self.title!r} (id {self.page_id})"
        return f"{self.file}: {self.where}:{page} {self.reason}"


@dataclass(frozen=True)
class SiteInfo:
    dbname: str
    sitename: str
    base: str
    generator: str
    case: str
    language: str
    export_version: str
    namespaces: dict[int, str] = field(default_factory=dict)
    namespace_cases: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "dbname": self.dbname, "sitename": self.sitename, "base": self.base,
            "generator": self.generator, "case": self.case, "language": self.language,
            "export_version": self.export_version,
            "namespaces": [{"key": k, "name": v, "case": self.namespace_cases.get(k, self.case)}
                           for k, v in sorted(self.namespaces.items())],
        }

    @classmethod
    def from_json(cls, data: dict) -> SiteInfo:
        """Our own siteinfo JSON, or a MediaWiki API `meta=siteinfo&siprop=general|namespaces` answer."""
        if "query" in data:
            general = data["query"]["general"]
            spaces = data["query"]["namespaces"].values()
            namespaces = {int(ns["id"]): ns.get("name", ns.get("*", "")) for ns in spaces}
            cases = {int(ns["id"]): ns.get("case", general.get("case", "first-letter")) for ns in spaces}
            return cls(dbname=general.get("wikiid", ""), sitename=general.get("sitename", ""),
                       base=general.get("base", ""), generator=general.get("generator", ""),
                       case=general.get("case", "first-letter"), language=general.get("lang", ""),
                       export_version="", namespaces=namespaces, namespace_cases=cases)
        namespaces = {int(ns["key"]): ns["name"] for ns in data.get("namespaces", [])}
        cases = {int(ns["key"]): ns.get("case", data.get("case", "first-letter"))
                 for ns in data.get("namespaces", [])}
        return cls(dbname=data.get("dbname", ""), sitename=data.get("sitename", ""),
                   base=data.get("base", ""), generator=data.get("generator", ""),
                   case=data.get("case", "first-letter"), language=data.get("language", ""),
                   export_version=data.get("export_version", ""), namespaces=namespaces,
                   namespace_cases=cases)


# --- opening files -------------------------------------------------------------------------------

MAGIC = {b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gz"}


def detect_format(path: str) -> str:
    """'bz2', 'xz', 'gz' or 'xml', from the first bytes; DumpError for anything else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except FileNotFoundError:
        raise DumpError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DumpError(f"{path}: is a directory, not a dump file") from None
    except OSError as exc:
        raise DumpError(f"{path}: cannot read: {exc.strerror}") from None
    if not head:
        raise DumpError(f"{path}: the file is empty")
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "xml"
    raise DumpError(f"{path}: not a MediaWiki XML dump (expected XML, .bz2, .xz or .gz content)")


def _decompressor(fmt: str):
    """A fresh incremental decompressor for one bz2, xz or gzip stream."""
    if fmt == "bz2":
        return bz2.BZ2Decompressor()
    if fmt == "xz":
        return lzma.LZMADecompressor()
    return zlib.decompressobj(wbits=31)


def _stream_blocks(handle, fmt: str, source, next_stream=None) -> Iterator[bytes]:
    """Decompressed blocks of the streams that follow one another from the handle's position, fed to an
    incremental decompressor so a cut anywhere still yields every byte before it; `source.complete`
    and `source.error` say how the data ended; `next_stream(offset)` hears where each later stream starts."""
    decompressor = _decompressor(fmt)
    pending = b""
    while True:
        data = pending or handle.read(READ_BLOCK)
        pending = b""
        if not data:
            if not decompressor.eof:
                source.complete = False
                source.error = f"the compressed data ends inside a {fmt} stream"
            return
        try:
            out = decompressor.decompress(data)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            source.complete = False
            source.error = f"corrupt {fmt} data: {exc}"
            return
        if out:
            yield out
        if decompressor.eof:  # concatenated streams (gz members, xz streams, bz2 streams) follow
            pending = decompressor.unused_data.lstrip(b"\0")
            while not pending and (more := handle.read(READ_BLOCK)):
                pending = more.lstrip(b"\0")  # xz stream padding
            if not pending:
                return
            if next_stream is not None:
                next_stream(handle.tell() - len(pending))
            decompressor = _decompressor(fmt)


def open_decompressed(path: str, fmt: str):
    opener = {"bz2": bz2.open, "xz": lzma.open, "gz": gzip.open, "xml": open}[fmt]
    return opener(path, "rb")


def read_siteinfo(path: str, fmt: str | None = None) -> SiteInfo:
    """Parse `<mediawiki>` attributes and `<siteinfo>` from the head of the dump."""
    fmt = fmt or detect_format(path)
    head = b""
    try:
        with open_decompressed(path, fmt) as stream:
            while b"</siteinfo>" not in head and len(head) < 8 * READ_BLOCK:
                block = stream.read(64 * 1024)
                if not block:
                    break
                head += block
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DumpError(f"{path}: cannot decompress the start of the file: {exc}") from None
    end = head.find(b"</siteinfo>")
    start = head.find(b"<mediawiki")
    if start < 0 or end < 0:
        raise DumpError(f"{path}: no <mediawiki><siteinfo> header: not a MediaWiki XML dump")
    try:
        root = ET.fromstring(head[start:end] + b"</siteinfo></mediawiki>")
    except ET.ParseError as exc:
        raise DumpError(f"{path}: the <siteinfo> header is not well-formed XML: {exc}") from None
    info = _child(root, "siteinfo")
    lang = root.get("{http://www.w3.org/XML/1998/namespace}lang", "")
    namespaces, cases = {}, {}
    spaces = _child(info, "namespaces")
    for ns in list(spaces) if spaces is not None else []:
        key = int(ns.get("key"))
        namespaces[key] = ns.text or ""
        cases[key] = ns.get("case", "first-letter")
    return SiteInfo(
        dbname=_text(info, "dbname"), sitename=_text(info, "sitename"), base=_text(info, "base"),
        generator=_text(info, "generator"), case=_text(info, "case") or "first-letter",
        language=lang, export_version=root.get("version", ""), namespaces=namespaces,
        namespace_cases=cases,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element, name: str):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _text(element, name: str) -> str:
    child = _child(element, name)
    return (child.text or "") if child is not None else ""


# --- page parsing ----------------------------------------------------------------------------------

TITLE_RE = re.compile(rb"<title>([^<]*)<")
ID_RE = re.compile(rb"<id>([0-9]+)</id>")


def _peek_identity(raw: bytes) -> tuple[str | None, int | None]:
    """Title and page id of a broken page, read with regexes, for the error message."""
    title = TITLE_RE.search(raw)
    page_id = ID_RE.search(raw)
    return (
        title.group(1).decode("utf-8", "replace") if title else None,
        int(page_id.group(1)) if page_id else None,
    )


def parse_page(raw: bytes) -> Page:
    """One `<page>…</page>` element → Page; ValueError with the reason when it is not a valid page."""
    try:
        element = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None
    title = _text(element, "title")
    ns = _text(element, "ns")
    page_id = _text(element, "id")
    if not title or not page_id.isdigit() or not ns.lstrip("-").isdigit():
        raise ValueError("page lacks <title>, a numeric <id> or a numeric <ns>")
    redirect = _child(element, "redirect")
    revisions = [child for child in element if _local(child.tag) == "revision"]
    if not revisions:
        raise ValueError("page has no <revision>")
    revision = revisions[-1]  # dumps list revisions oldest first
    revision_id = _text(revision, "id")
    stamp = _text(revision, "timestamp")
    if not revision_id.isdigit():
        raise ValueError("revision lacks a numeric <id>")
    try:
        timestamp = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"revision timestamp {stamp!r} is not ISO 8601 UTC") from None
    text = _child(revision, "text")
    return Page(
        page_id=int(page_id), namespace=int(ns), title=title,
        redirect_target=redirect.get("title") if redirect is not None else None,
        revision_id=int(revision_id), revision_timestamp=timestamp,
        wikitext=(text.text or "") if text is not None else "",
    )


# --- byte sources: where the decompressed bytes of one read task come from -----------------------


class ByteSource:
    """Yields decompressed blocks; `owned_end` becomes the decompressed offset where this task's share
    ends (None: unknown yet or the whole input). Pages whose `<page>` starts before it are ours."""

    owned_end: int | None = None
    complete: bool = True  # False when the compressed data ended before its stream did
    label: str = ""

    def blocks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def where(self, offset: int) -> str:
        return f"decompressed byte {offset}"


class WholeSource(ByteSource):
    """A whole file, decompressed sequentially (single-stream bz2, xz, gz, or a small plain file)."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt

    def blocks(self) -> Iterator[bytes]:
        # incremental decompression: a cut inside a compressed block still yields every byte before it
        if self.fmt == "xml":
            with open(self.path, "rb") as handle:
                while block := handle.read(READ_BLOCK):
                    yield block
            return
        with open(self.path, "rb") as handle:
            yield from _stream_blocks(handle, self.fmt, self)

    def where(self, offset: int) -> str:
        return f"byte {offset}" if self.fmt == "xml" else f"decompressed byte {offset}"


class XmlRangeSource(ByteSource):
    """Plain XML from byte `start`; pages starting before `end` are ours (we read past it to finish)."""

    def __init__(self, path: str, start: int, end: int):
        self.path, self.start, self.end = path, start, end
        if end < os.path.getsize(path):
            self.owned_end = end - start

    def blocks(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            while block := handle.read(READ_BLOCK):
                yield block

    def where(self, offset: int) -> str:
        return f"byte {self.start + offset}"


class Bz2StreamsSource(ByteSource):
    """The bz2 streams that start inside compressed bytes [start, end), plus whatever follows until
    the last of our pages is finished (a page may cross a stream boundary in non-Wikimedia files)."""

    def __init__(self, path: str, start: int, end: int):
        self.path, self.start, self.end = path, start, end
        self.stream_starts: list[tuple[int, int]] = []  # (compressed offset, decompressed offset)

    def _first_stream(self, handle) -> int | None:
        handle.seek(self.start)
        window = handle.read(self.end - self.start + 9)
        for match in BZ2_STREAM_START.finditer(window):
            if self.start + match.start() >= self.end:
                break
            return self.start + match.start()
        return None

    def blocks(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            position = self._first_stream(handle)
            if position is None:
                self.owned_end = 0
                return
            handle.seek(position)
            produced = 0
            self.stream_starts.append((position, 0))

            def next_stream(offset: int) -> None:
                if offset >= self.end and self.owned_end is None:
                    self.owned_end = produced  # the streams from here on belong to the next task
                self.stream_starts.append((offset, produced))

            for out in _stream_blocks(handle, "bz2", self, next_stream):
                produced += len(out)
                yield out

    def where(self, offset: int) -> str:
        stream, base = self.stream_starts[0] if self.stream_starts else (self.start, 0)
        for compressed, decompressed in self.stream_starts:
            if decompressed <= offset:
                stream, base = compressed, decompressed
        return f"bz2 stream at byte {stream}, decompressed byte {offset - base} of it"


def scan_pages(source: ByteSource, file_label: str) -> Iterator[Page | Problem]:
    """Cut `<page>` elements out of `source`, parse each, yield Pages and Problems."""
    buffer = b""
    base = 0  # decompressed offset of buffer[0]
    search_from = 0
    blocks = source.blocks()
    exhausted = False
    saw_doc_close = False
    last: Page | None = None

    def more() -> bool:
        nonlocal buffer, exhausted
        if exhausted:
            return False
        block = next(blocks, None)
        if block is None:
            exhausted = True
            return False
        buffer += block
        return True

    while True:
        start = buffer.find(PAGE_OPEN, search_from)
        if start < 0:
            if DOC_CLOSE in buffer:
                saw_doc_close = True
            keep = len(buffer) - len(PAGE_OPEN) + 1
            if keep > 0:
                base += keep
                buffer = buffer[keep:]
            search_from = 0
            if source.owned_end is not None and base >= source.owned_end:
                break
            if not more():
                saw_doc_close = saw_doc_close or DOC_CLOSE in buffer
                break
            continue
        if source.owned_end is not None and base + start >= source.owned_end:
            break
        end = buffer.find(PAGE_CLOSE, start)
        while end < 0:
            scanned = max(start, len(buffer) - len(PAGE_CLOSE))
            if not more():
                break
            end = buffer.find(PAGE_CLOSE, scanned)
        if end < 0:
            title, page_id = _peek_identity(buffer[start:])
            reason = "the dump ends inside this page (truncated input)"
            if title is None and last is not None:  # the cut came before its title: name its neighbour
                reason = f"the dump ends inside the page after {last.title!r} (id {last.page_id}) (truncated input)"
            if not source.complete:
                reason += f"; {getattr(source, 'error', 'compressed stream incomplete')}"
            yield Problem(file_label, source.where(base + start), reason, "truncated", title, page_id)
            return
        raw = buffer[start:end + len(PAGE_CLOSE)]
        try:
            last = parse_page(raw)
            yield last
        except ValueError as exc:
            title, page_id = _peek_identity(raw)
            yield Problem(file_label, source.where(base + start), str(exc), "malformed", title, page_id)
        base += end + len(PAGE_CLOSE)
        buffer = buffer[end + len(PAGE_CLOSE):]
        search_from = 0
    if source.owned_end is None:
        # this task read to the end of the input, so it also says how the input ends
        saw_doc_close = saw_doc_close or DOC_CLOSE in buffer
        while not saw_doc_close and more():
            saw_doc_close = DOC_CLOSE in buffer
            buffer = buffer[-len(DOC_CLOSE):]
        if not source.complete:
            yield Problem(file_label, source.where(base + len(buffer)),
                          f"{getattr(source, 'error', 'compressed stream incomplete')} (truncated input)",
                          "truncated")
        elif not saw_doc_close:
            yield Problem(file_label, source.where(base + len(buffer)),
                          "the dump ends without </mediawiki> (truncated input)", "truncated")


# --- planning parallel reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One read task: `kind` is 'whole', 'xml-range' or 'bz2-streams'; byte range in the file.
    The task that reads up to the end of the input also reports how the input ends."""

    path: str
    fmt: str
    kind: str
    start: int
    end: int


def is_multistream_bz2(path: str, probe_bytes: int = 4 * READ_BLOCK) -> bool:
    """Multistream dumps put the siteinfo alone in a first small stream, so a second stream
    start shows up within the first megabytes."""
    with open(path, "rb") as handle:
        head = handle.read(probe_bytes)
    return any(m.start() > 0 for m in BZ2_STREAM_START.finditer(head))


def read_stream_index(index_path: str) -> list[int]:
    """Stream offsets from a Wikimedia `…-multistream-index.txt[.bz2]` (lines `offset:page_id:title`)."""
    fmt = detect_format(index_path)
    offsets = set()
    with open_decompressed(index_path, fmt) as stream:
        for number, line in enumerate(stream, 1):
            head = line.split(b":", 1)[0]
            if not head.strip().isdigit():
                raise DumpError(f"{index_path}: line {number} is not 'offset:page_id:title'")
            offsets.add(int(head))
    return sorted(offsets)


def plan_chunks(path: str, chunk_bytes: int, index_path: str | None = None) -> list[Chunk]:
    """Split one dump into independent read tasks."""
    fmt = detect_format(path)
    size = os.path.getsize(path)
    if fmt == "xml" and size > chunk_bytes:
        bounds = list(range(0, size, chunk_bytes)) + [size]
        return [Chunk(path, fmt, "xml-range", a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    if fmt == "bz2" and index_path:
        offsets = read_stream_index(index_path)
        starts = [0]
        for offset in offsets:
            if offset - starts[-1] >= chunk_bytes:
                starts.append(offset)
        bounds = starts + [size]
        return [Chunk(path, fmt, "bz2-streams", a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    if fmt == "bz2" and size > chunk_bytes and is_multistream_bz2(path):
        bounds = list(range(0, size, chunk_bytes)) + [size]
        return [Chunk(path, fmt, "bz2-streams", a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    return [Chunk(path, fmt, "whole", 0, size)]


def read_chunk(chunk: Chunk, file_label: str | None = None) -> Iterator[Page | Problem]:
    label = file_label or chunk.path
    if chunk.kind == "xml-range":
        source: ByteSource = XmlRangeSource(chunk.path, chunk.start, chunk.end)
    elif chunk.kind == "bz2-streams":
        source = Bz2StreamsSource(chunk.path, chunk.start, chunk.end)
    else:
        source = WholeSource(chunk.path, chunk.fmt)
    yield from scan_pages(source, label)

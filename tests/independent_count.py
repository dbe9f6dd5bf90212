"""An independent page count for the tests: the standard library's iterparse over the whole
document (no page cutting, no chunking), stopping where a truncated file stops."""

from __future__ import annotations

import bz2
import collections
import lzma
import xml.etree.ElementTree as ET


def count_pages(path) -> dict:
    opener = bz2.open if str(path).endswith(".bz2") else lzma.open if str(path).endswith(".xz") else open
    per_namespace: collections.Counter = collections.Counter()
    articles = redirects = 0
    ids = []
    truncated = False
    with opener(path, "rb") as stream:
        try:
            for _, element in ET.iterparse(stream, events=("end",)):
                if element.tag.rsplit("}", 1)[-1] != "page":
                    continue
                ns = int(element.find("{*}ns").text)
                per_namespace[str(ns)] += 1
                ids.append(int(element.find("{*}id").text))
                is_redirect = element.find("{*}redirect") is not None
                if ns == 0:
                    redirects += is_redirect
                    articles += not is_redirect
                element.clear()
        except ET.ParseError:
            truncated = True
    return {"per_namespace": dict(per_namespace), "pages": sum(per_namespace.values()),
            "ns0_articles": articles, "ns0_redirects": redirects, "ids": ids, "truncated": truncated}

"""The reading protocol's committed judgements are complete and consistent, and its score adds up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
spec = importlib.util.spec_from_file_location("judge", ROOT / "benchmarks" / "judge.py")
judge = importlib.util.module_from_spec(spec)
spec.loader.exec_module(judge)
FILES = sorted((ROOT / "benchmarks" / "judged").glob("**/*.tsv"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_committed_judgement_is_complete(path):
    rows = judge.read(path)
    assert rows and list(rows[0]) == judge.COLUMNS
    wiki, task = rows[0]["wiki"], rows[0]["task"]
    assert path.stem.startswith(f"{wiki}-{task}")
    for index, row in enumerate(rows):
        judge.check(row, f"{path.name} row {index + 2}")  # yes/no, a known reason for every "no"
        assert (row["wiki"], row["task"]) == (wiki, task)
        assert "⟦" in row["sentence"] and row["link_text"] and row["link_target"]
    assert len({row["id"] for row in rows}) == len(rows)


def test_the_score_counts_right_targets_and_kept_links(tmp_path):
    rows = [{"id": f"x-link-{i}", "wiki": "xwiki", "task": "link", "sentence": "⟦a⟧", "link_text": "a",
             "link_target": "A", "right_target": right, "kept": kept, "reason": reason}
            for i, (right, kept, reason) in enumerate([("yes", "yes", ""), ("yes", "no", "everyday/place"),
                                                       ("no", "no", "wrong-target"), ("yes", "no", "everyday")])]
    judge.write(tmp_path / "xwiki-link.tsv", rows, judge.COLUMNS)

    class Args:
        files = [str(tmp_path / "xwiki-link.tsv")]
        json = True

    table = judge.score(Args)
    assert table["xwiki-link"] == {"judged": 4, "right_target": 0.75, "kept": 0.25,
                                   "reasons": {"everyday": 1, "everyday/place": 1, "wrong-target": 1}}
    bad = dict(rows[0], kept="maybe")
    with pytest.raises(SystemExit, match="kept must be yes or no"):
        judge.check(bad, "row")
    with pytest.raises(SystemExit, match="cannot be kept"):
        judge.check(dict(rows[2], kept="yes"), "row")

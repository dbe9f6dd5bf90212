"""Warehouse files without Spark: text and bytes, folders copied, moved, listed by age and deleted, and
a session opened only when a table is read."""

from __future__ import annotations

import os
import time

import pytest

from pipeline.warehouse import Warehouse, wiki_lock


def no_spark():
    raise AssertionError("a file operation started Spark")


def test_files_and_folders_without_a_spark_session(tmp_path):
    root = tmp_path / "wh"
    warehouse = Warehouse(no_spark, str(root))
    assert warehouse.manifest("xxwiki") is None and not warehouse.exists(f"{root}/nothing")
    warehouse.save_manifest("xxwiki", {"current_snapshot": "20260101"})
    assert warehouse.manifest("xxwiki") == {"current_snapshot": "20260101"}
    assert not any(name.endswith(".tmp") for name in os.listdir(root / "_manifests"))  # written whole, then moved
    local = tmp_path / "model"
    local.mkdir()
    (local / "model.json").write_bytes(b"{}")
    (local / "metrics.csv").write_text("a,b\n")
    target = f"file://{root}/models/x/v1"
    warehouse.put_dir(str(local), target)  # flat files into a folder that does not exist yet
    assert warehouse.read_bytes(f"{target}/model.json") == b"{}"
    assert [p.rsplit("/", 1)[-1] for p in warehouse.list(target)] == ["metrics.csv", "model.json"]
    warehouse.move(f"{root}/models/x/v1", f"{root}/models/y/v2")
    assert not warehouse.exists(f"{root}/models/x/v1") and warehouse.read_text(f"{root}/models/y/v2/metrics.csv")
    for name in ("run=a", "run=b", "run=c"):
        os.makedirs(root / "recommendations" / name)
        time.sleep(0.01)
    os.utime(root / "recommendations" / "run=a")  # touched last: the newest
    assert [p.rsplit("/", 1)[-1] for p in warehouse.list_by_age(f"{root}/recommendations")] == \
        ["run=b", "run=c", "run=a"]
    warehouse.delete(f"{root}/recommendations")
    assert warehouse.list(f"{root}/recommendations") == []
    with pytest.raises(AssertionError, match="started Spark"):
        warehouse.read("pages", "xxwiki", "20260101")


def test_the_wiki_lock_is_released_when_the_holder_ends(tmp_path):
    from pipeline.warehouse import WarehouseBusy

    with wiki_lock(str(tmp_path), "xxwiki"):
        with pytest.raises(WarehouseBusy, match=r"another linkrec run \(pid"):
            with wiki_lock(str(tmp_path), "xxwiki"):
                pass
        with wiki_lock(str(tmp_path), "yywiki"):  # another wiki is not held up
            pass
    with wiki_lock(str(tmp_path), "xxwiki"):  # free again
        pass

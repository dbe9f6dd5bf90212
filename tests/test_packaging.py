"""The installed distribution: its generic top-level names (pipeline, sinks, targeting, configs) belong
to linkrec alone in this environment, and they are the project's own files."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import packages_distributions
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("pipeline", "sinks", "targeting", "configs")


def test_no_other_distribution_claims_our_top_level_names():
    owners = packages_distributions()
    for name in TOP_LEVEL:
        assert set(owners.get(name, ["linkrec"])) == {"linkrec"}, (name, owners.get(name))


def test_the_imported_packages_are_this_projects():
    for name in TOP_LEVEL:
        module = import_module(name)
        assert Path(module.__file__).resolve().parent.parent == PROJECT, name

"""The de-orphaning task (issue 13, contracts.md §4): articles that no other article links to, and the
links that would reach them. So far: the orphans table."""


class OrphanError(Exception):
    """An input of the orphan task that cannot be used (the command line exits 1)."""

"""What editors did with the links (issue 24): the served-links ledger, the submissions read against it,
and the judged files of the reading protocol turned into submissions."""


class FeedbackError(Exception):
    """An input of `linkrec feedback` that cannot be used (the command line exits 1)."""

"""Where recommendations go: database rows and search-index tags, with the semantics of the contract."""

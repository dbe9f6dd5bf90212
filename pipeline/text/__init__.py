"""Wikitext as text: the title normaliser, the link reader, the sentence splitter and the anchor matcher."""

"""Ingestion: dumps or page tables into the pages, titles and links tables of a wiki snapshot."""

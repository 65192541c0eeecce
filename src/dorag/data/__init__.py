"""Datasets, corpora, AST extraction, prompt construction and completion post-processing."""

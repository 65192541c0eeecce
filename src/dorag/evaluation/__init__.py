"""Benchmarks, sandboxed execution and metrics. Imports no torch, transformers or faiss."""

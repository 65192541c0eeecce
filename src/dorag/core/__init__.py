"""Config, run directories, JSONL I/O, errors and optional-dependency checks. Imports nothing heavy."""

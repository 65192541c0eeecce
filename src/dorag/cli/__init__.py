"""The `dorag` command line: argument parsing and output only; the work lives in the layers below."""

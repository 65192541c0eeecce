"""Load, provision and generate with code models (transformers locally, or any OpenAI-compatible server)."""

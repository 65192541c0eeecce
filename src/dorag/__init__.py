"""dorag: adapt code language models (LoRA, DoRA, QLoRA, RAG) and measure what each adaptation buys."""

__version__ = "0.1.0"

"""`dorag serve`: an OpenAI-compatible API over one base model with switchable adapters and RAG, a web
page, and a feedback store whose ratings export as training pairs (`dorag feedback export`).

Needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'dorag[serve]'``.
"""

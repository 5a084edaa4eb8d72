"""The Manager's REST API (FastAPI on uvicorn, inside the Manager process)."""

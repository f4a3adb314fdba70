"""Pydantic request and response schemas (``XCreate`` in, ``XRead`` out)."""

"""Runnable examples of tbal: ``python -m examples.demo`` (``make demo``)."""

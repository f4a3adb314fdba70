"""SQL: one module per table group; functions take a Session and return rows or counts."""

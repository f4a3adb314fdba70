"""tbal service: the FastAPI application, its database and the round function shared with the worker."""

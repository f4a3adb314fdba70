"""Rules of the service not yet in a domain package: ingestion, raw items, exports, audit, prediction."""

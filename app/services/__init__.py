"""Rules of the service: round lifecycle, drawing sets, label aggregation, ingestion, exports."""

"""HTTP layer: one thin router per resource under ``/api/v1``."""

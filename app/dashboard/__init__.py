"""The dashboard: ``/dashboard`` (a page with hand-written SVG charts, no build step) and the JSON it
reads (``/api/v1/projects/{id}/summary``, ``/api/v1/dashboard/projects``), aggregated in SQL."""

from app.dashboard.router import router

__all__ = ["router"]

"""Compatibility only: tests/app/test_one_path.py and test_delta_schedule.py still import these names
from here. They live in tests/app/conftest.py; delete this module once those two import from there
(the round tests themselves are in tests/app/rounds/)."""

from tests.app.conftest import MakeProject, ready_project

__all__ = ["MakeProject", "ready_project"]

"""The crash-and-fault suite (``python -m pytest -m faults``): see conftest.py."""

"""The package's version, kept equal to pyproject.toml's (tests/test_cli.py checks), so that a
checkout that was never pip-installed knows it too: ``results.json`` records it from here, not
from installed metadata, which such a checkout lacks and which may describe another copy."""

__version__ = "0.1.0"

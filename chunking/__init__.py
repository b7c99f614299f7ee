"""Chunked conflict-map ETL: the core shared by the Lambda handlers, the CLI and the local emulator."""

__version__ = "0.1.0"

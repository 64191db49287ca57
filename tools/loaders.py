"""Where the file loaders were: they are :mod:`tools.ingest.loaders` now.

Kept because users import ``Document`` from here (the README's examples did until the move);
new code imports ``tools.Document`` or :mod:`tools.ingest.loaders`.
"""

from tools.ingest.loaders import SUPPORTED_SUFFIXES, Document, Loaded, LoadError, find_files, load_file

__all__ = ["SUPPORTED_SUFFIXES", "Document", "LoadError", "Loaded", "find_files", "load_file"]

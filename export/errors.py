"""The one error the export path raises on purpose.

Every check in `export/` that a user can fix (a bad CSV cell, an unknown column, a bundle
directory in the way, a parity loss after quantisation) raises `ExportError` with a message
that names the file, the field and the fix. The CLI prints it on one line and exits 2.
"""

from __future__ import annotations


class ExportError(Exception):
    """A problem with the inputs or the outputs of an export; the message says which and why."""

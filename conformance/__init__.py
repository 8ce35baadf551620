"""smtp-conformance: an SMTP server conformance suite.

Layers, each depending only on those above it:
scenario model (model, loader) → dialogue engine (reply, connection, dialogue) → targets →
runner → pytest plugin / CLI → reports.
"""

__version__ = "0.1.0"

"""fitpipe-columnstore: an example third-party adapter package for fitpipe.

:class:`ColumnStore` holds named columns, one of which may be the target and one the
per-sample weight. Installing the package makes ``fitpipe.adapt`` and ``fitpipe.Trainer.fit``
take a ``ColumnStore`` directly: the adapter is advertised in the ``fitpipe.adapters``
entry-point group (see ``pyproject.toml``) and fitpipe loads it on first use.
"""

from fitpipe_columnstore.store import ColumnStore

__all__ = ["ColumnStore"]

"""xnode: a federated, self-hostable communication server."""

__version__ = "0.1.0"

"""itemstore service: collections of JSON items by key over HTTP."""

__version__ = "0.1.0"

"""aicash: the domain package of the AI Cash Evolution ML platform."""

__version__ = "0.1.0"

"""memberstream: real-time member intelligence for e-commerce event streams."""

__version__ = "0.1.0"

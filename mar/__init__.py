"""mar: an event-sourced medication administration record."""

__version__ = "0.1.0"

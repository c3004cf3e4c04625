"""Upgrades of an installation's topics (``ubridge migrate …``)."""

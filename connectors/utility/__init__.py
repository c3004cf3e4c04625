"""Utility business systems: the HTTP sink that delivers tasks, one per utility."""

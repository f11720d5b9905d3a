"""Repositories, tags and images as pages need them, with the caches that keep them fast and fresh."""

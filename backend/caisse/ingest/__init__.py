"""Uploads from terminals: verification, storage, and the held records a person reviews."""

"""The built-in offer catalog and reference population (package data)."""

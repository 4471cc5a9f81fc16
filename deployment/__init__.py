"""Deployment: the exported bundle, batch scoring, the HTTP decision service."""

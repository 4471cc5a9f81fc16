"""offerpilot: learn which offer to send to which customer, and when."""

__version__ = "0.1.0"

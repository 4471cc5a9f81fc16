"""The app: the ``offerpilot`` command, the demo and its report (the top layer: it may import every other)."""

"""The ``offerpilot`` subcommands: each module adds its parsers (``register``) and the functions they run."""

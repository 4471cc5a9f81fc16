"""``python -m offerpilot``: the same as the ``offerpilot`` command."""

from offerpilot.app.cli import main

raise SystemExit(main())

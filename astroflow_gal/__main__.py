"""``python -m astroflow_gal`` runs the command line."""

from .cli import main

raise SystemExit(main())

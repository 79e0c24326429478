"""``python -m fundrouter_cli`` runs the same command as ``fundrouter``."""

from fundrouter_cli.main import app

app(prog_name="fundrouter")

#!/usr/bin/env python
"""Django's command-line utility for the marketplace operations platform."""

import os
import sys
from pathlib import Path

# `site` is a stdlib module name, so the project shell `site/` is a plain folder and
# its settings package `config` is imported from it by putting the folder on the path.
# The same folder is on the path for gunicorn (--pythonpath), pytest (pythonpath) and Docker (PYTHONPATH).
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "site"))


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    # `manage.py test` hands over to pytest, which needs the test settings.
    default = "scoreboard.settings_test" if sys.argv[1:2] == ["test"] else "scoreboard.settings"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", default)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

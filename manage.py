#!/usr/bin/env python
"""Django's command-line utility for Agent Chat."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentchat_site.settings")
    from django.core.management import execute_from_command_line

    from agentchat_site.envconfig import SettingsError

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - load settings now so a bad variable fails here
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

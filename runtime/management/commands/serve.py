"""`manage.py serve [HOST:PORT]`: the ASGI server and its supervised workers (`make serve`)."""

from __future__ import annotations

import re
import sys
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runtime.worker.supervisor import Supervisor

HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})")


class Command(BaseCommand):
    help = "Serve Agent Chat: uvicorn on HOST:PORT and AGENTCHAT_WORKERS supervised worker processes."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("host_port", nargs="?", default="127.0.0.1:8000", help="HOST:PORT (default 127.0.0.1:8000)")
        parser.add_argument("--workers", type=int, default=None, help="Worker processes (default AGENTCHAT_WORKERS)")

    def handle(self, *args: Any, **options: Any) -> None:
        match = HOST_PORT.fullmatch(options["host_port"])
        if match is None or not 0 < int(match["port"]) < 65536:
            raise CommandError(f"{options['host_port']!r} is not HOST:PORT; give e.g. 127.0.0.1:8000")
        workers = options["workers"] if options["workers"] is not None else settings.AGENTCHAT_WORKERS
        if not 1 <= workers <= 64:
            raise CommandError(f"--workers {workers}: give 1 to 64 worker processes")
        host = match["host"].strip("[]")
        self.stdout.write(f"serving on http://{match['host']}:{match['port']}/ with {workers} workers")
        self.stdout.flush()
        sys.exit(Supervisor(host=host, port=int(match["port"]), workers=workers).run())

"""Exit 0 if HOST:PORT can be served, 1 (with one readable line) if not; standard library only.

    python scripts/port_free.py 127.0.0.1:8000

`make run` and `make serve` call it first, so a second start on a busy port stops before it
migrates, loads the config or recovers runs: a server already listening keeps its live turns.
It binds the address the way the development server will (SO_REUSEADDR, so a port left in
TIME_WAIT counts as free) and closes the socket at once.
"""

from __future__ import annotations

import errno
import socket
import sys


def parse(value: str) -> tuple[str, int]:
    """`host:port`, `[v6-host]:port` or a bare `port` (host 127.0.0.1), as (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:8000)")
    return host, int(port_text)


def problem(host: str, port: int) -> str | None:
    """Why HOST:PORT cannot be served, or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"{host}:{port} is already in use (is Agent Chat already running?); stop that server "
                    "or choose another address, e.g. make run HOST_PORT=127.0.0.1:8001"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/port_free.py HOST:PORT", file=sys.stderr)
        return 2
    try:
        host, port = parse(argv[0])
    except ValueError as exc:
        print(f"port check: {exc}", file=sys.stderr)
        return 2
    reason = problem(host, port)
    if reason is not None:
        print(f"port check: {reason}; nothing was changed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

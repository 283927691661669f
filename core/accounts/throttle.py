"""How django-axes counts failed sign-ins: per account and per client address.

A password sign-in names an account, so its failures count against that account and against the
client's address. A bad API token names no account: it counts against the address only (counting
it against "no account" would lock every token client out together).
"""

from __future__ import annotations

from typing import Any


def lockout_parameters(request_or_attempt: Any, credentials: dict[str, Any] | None) -> list[str]:
    username = (credentials or {}).get("username") or getattr(request_or_attempt, "username", None)
    return ["username", "ip_address"] if username else ["ip_address"]

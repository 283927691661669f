"""Addresses a configured URL may not point at: link-local and cloud-metadata services.

A provider is sent its API key and the conversation; pointed at a cloud's metadata service
(169.254.169.254 and friends) it would fetch the machine's credentials instead. The host is read the
way HTTP clients read it, so the same address written in decimal (`http://2852039166/`), hex
(`0xA9FEA9FE`), octal (`0251.0376.0251.0376`), short forms (`169.254.43518`), as IPv4-mapped IPv6
(`[::ffff:169.254.169.254]`) or behind a user name (`http://localhost@169.254.169.254/`) is
refused too. Loopback (localhost) stays allowed: local model servers live there.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
REFUSED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure, OCI metadata
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form `inet_aton` accepts (1 to 4 parts, each decimal, 0x-hex or 0-octal)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        lower = part.lower()
        try:
            if lower.startswith("0x"):
                numbers.append(int(lower[2:] or "0", 16))
            elif len(lower) > 1 and lower.startswith("0"):
                numbers.append(int(lower, 8))
            else:
                numbers.append(int(lower, 10))
        except ValueError:
            return None
    *leading, last = numbers
    if any(number > 0xFF for number in leading) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _address(host: str) -> Address | None:
    host = host.strip("[]").split("%", 1)[0]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return _ipv4_loose(host) if host and (host[0].isdigit()) else None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64 or (address.packed[:12] == bytes(12) and int(address) > 0xFFFF):
        return ipaddress.IPv4Address(address.packed[12:])  # NAT64, or the old IPv4-compatible form
    return None


def _refused(address: Address) -> bool:
    candidates: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        candidates.append(embedded)
    return any(candidate in network for candidate in candidates for network in REFUSED_NETWORKS)


def _hosts(url: str) -> list[str]:
    """The host an HTTP client connects to, and anything in the authority that could pass for one."""
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname or ""
    except ValueError:
        return []
    hosts = [hostname]
    for piece in parts.netloc.replace("\\", "@").split("@"):
        host = piece.rsplit(":", 1)[0] if piece.count(":") == 1 else piece
        hosts.append(host.lower())
    return [host.rstrip(".") for host in hosts if host]


def url_host_refusal(url: str) -> str | None:
    """Why `url` may not be configured (it points at a link-local or metadata address), or None."""
    for host in _hosts(url):
        address = _address(host)
        if host in METADATA_NAMES or (address is not None and _refused(address)):
            return (
                f"points at a link-local or cloud-metadata address ({host}), which could hand out "
                "the machine's credentials; give the model server's own address, such as "
                "http://localhost:11434/v1 or https://api.openai.com/v1"
            )
    return None

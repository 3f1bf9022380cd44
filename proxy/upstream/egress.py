"""Where an ``api_base`` given through the admin API may point: ``TOLLWAY_UPSTREAM_ALLOW`` /
``TOLLWAY_UPSTREAM_DENY``.

Each variable is a comma-separated list of entries: an IP network (``10.0.0.0/8``), an
address, a host name, or ``*.example.com``. The deny list always holds the link-local
networks and the cloud metadata endpoints (169.254.169.254, ``fd00:ec2::254``,
``metadata.google.internal`` ...), whatever the variable says. With an allow list set, a
base must match it. A host name is checked by name and by every address it resolves to
(``loop.getaddrinfo``: no blocking call), so ``metadata.attacker.example`` resolving to
169.254.169.254 is refused too; the upstream HTTP client follows no redirects, so a 3xx
cannot lead around the check either.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_ENV = "TOLLWAY_UPSTREAM_ALLOW"
DENY_ENV = "TOLLWAY_UPSTREAM_DENY"
ALWAYS_DENIED = (
    "169.254.0.0/16",  # IPv4 link-local, AWS/GCP/Azure/OCI metadata at 169.254.169.254
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
)
RESOLVE_TIMEOUT_S = 2.0


class EgressDenied(ValueError):
    """An api_base the policy refuses; the message says why (never a secret)."""


def _entries(text: str) -> list[str]:
    return [part.strip().lower() for part in text.split(",") if part.strip()]


class EgressPolicy:
    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> None:
        self._allow_nets, self._allow_names = _split(allow)
        self._deny_nets, self._deny_names = _split([*ALWAYS_DENIED, *deny])
        self._allow_all = not allow

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EgressPolicy:
        return cls(_entries(environ.get(ALLOW_ENV, "")), _entries(environ.get(DENY_ENV, "")))

    async def check(self, url: str) -> None:
        """Raise ``EgressDenied`` unless ``url`` may be called."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EgressDenied("api_base must be an http:// or https:// URL with a host")
        host = parts.hostname.rstrip(".").lower()
        literal = _address(host)
        addresses = [literal] if literal is not None else await _resolve(host)
        if literal is None and self._name_in(host, self._deny_names):
            raise EgressDenied(f"api_base host {host} is denied ({DENY_ENV})")
        for address in addresses:
            if any(address in net for net in self._deny_nets):
                shown = host if literal is not None else f"{host} (resolves to {address})"
                raise EgressDenied(f"api_base host {shown} is in a denied network ({DENY_ENV})")
        if self._allow_all:
            return
        if literal is None and self._name_in(host, self._allow_names):
            return
        if addresses and all(any(a in net for net in self._allow_nets) for a in addresses):
            return
        raise EgressDenied(f"api_base host {host} is not in {ALLOW_ENV}")

    @staticmethod
    def _name_in(host: str, names: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(host, name) for name in names)


def _split(entries: Sequence[str]) -> tuple[list[IPNetwork], list[str]]:
    nets: list[IPNetwork] = []
    names: list[str] = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.append(entry.lower())
    return nets, names


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        # Fail closed: what cannot be resolved now cannot be shown to be safe.
        raise EgressDenied(f"api_base host {host} does not resolve") from None
    out = []
    for info in infos:
        address = _address(str(info[4][0]).split("%")[0])
        if address is not None:
            out.append(address)
    return out

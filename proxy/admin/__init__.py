"""Admin API routes (placeholder until the admin module lands)."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route


def admin_routes(state: Any) -> list[Route]:
    return []

"""The admin API (LiteLLM-compatible): keys, teams, users, spend and model info.

Every route authorizes through ``common.authorize`` (deny by default) before reading its body.
"""

from __future__ import annotations

from starlette.routing import Route

from .common import AdminState
from .keys import KeyRoutes
from .models import ModelRoutes
from .spend import SpendRoutes
from .teams import TeamRoutes
from .users import UserRoutes

__all__ = ["AdminState", "admin_routes"]


def admin_routes(state: AdminState) -> list[Route]:
    return [
        *KeyRoutes(state).routes(),
        *TeamRoutes(state).routes(),
        *UserRoutes(state).routes(),
        *SpendRoutes(state).routes(),
        *ModelRoutes(state).routes(),
    ]

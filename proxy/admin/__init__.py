"""The admin API (LiteLLM-compatible): keys, teams, users, spend and model info.

Every route authorizes through ``common.authorize`` (deny by default) before reading its body.
"""

from __future__ import annotations

from starlette.routing import Route

from .budgets import BudgetRoutes
from .common import AdminState
from .credentials import CredentialRoutes
from .customers import CustomerRoutes
from .keys import KeyRoutes
from .model_groups import ModelGroupRoutes
from .models import ModelRoutes
from .organizations import OrganizationRoutes
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
        *CredentialRoutes(state).routes(),
        *CustomerRoutes(state).routes(),
        *OrganizationRoutes(state).routes(),
        *BudgetRoutes(state).routes(),
        *ModelGroupRoutes(state).routes(),
    ]

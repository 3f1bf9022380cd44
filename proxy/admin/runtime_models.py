"""Models and credentials managed at run time (``store_model_in_db: true``).

A model added through ``/model/new`` is validated exactly as a config entry is (provider,
api_base), its secrets are sealed (``proxy.secrets_crypto``) and stored, and it joins the
router at once: no restart. At start-up the stored models are opened and routed; one whose
secrets do not open under the current salt key is not served, and all such ids are reported
in one warning (never a secret, never a crash). A credential (``/credentials``) is a named
set of litellm_params values (``api_key``, ``api_base`` ...) that models use through
``litellm_params.litellm_credential_name``; their own params win over it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

import msgspec

from ..config import Config, ConfigError, ModelEntry, RouterSettings
from ..errors import InvalidRequest, NotFound
from ..routing import Router
from ..secrets_crypto import SecretBox, SecretError, salt_key
from ..server.settings import Settings
from ..store import Store
from ..store.models_db import CredentialRow, ModelRow, ModelsDB
from ..upstream.deployment import Deployment
from ..upstream.egress import EgressDenied, EgressPolicy
from ..upstream.providers import build_deployment

log = logging.getLogger("tollway.models")

CREDENTIAL_FIELD = "litellm_credential_name"


class RuntimeModels:
    def __init__(
        self,
        router: Router,
        router_settings: RouterSettings,
        settings: Settings,
        box: SecretBox,
        egress: EgressPolicy,
        custom: Collection[str] = (),
        forget_price: Callable[[str], None] | None = None,
    ) -> None:
        self._router = router
        # A changed model may carry other prices under the same id.
        self._forget_price = forget_price or (lambda _id: None)
        self._router_settings = router_settings
        self._settings = settings
        self._box = box
        self._egress = egress
        self._custom = tuple(custom)
        self._db: ModelsDB | None = None
        self.config_ids = {d.id for d in router.deployments()}
        self.rows: dict[str, ModelRow] = {}
        self.credentials: dict[str, CredentialRow] = {}
        # Stored ids whose secrets do not open under the current salt key.
        self.unreadable: list[str] = []

    @property
    def db(self) -> ModelsDB:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def load(self, store: Store) -> None:
        """Route every stored model; report the ones that cannot be opened, once."""
        self._db = ModelsDB(store)
        self.credentials = {c.credential_name: c for c in await self._db.credentials()}
        unreadable = [
            f"credential:{name}"
            for name, row in self.credentials.items()
            if not self._opens(row.credential_values)
        ]
        for row in await self._db.models():
            self.rows[row.model_id] = row
            try:
                self._router.add(self._deployment(row))
            except SecretError:
                unreadable.append(row.model_id)
            except (ConfigError, InvalidRequest) as exc:
                log.warning("stored model %s is not served: %s", row.model_id, exc)
        self.unreadable = unreadable
        if unreadable:
            log.warning(
                "%d stored model(s)/credential(s) cannot be decrypted with the current salt key "
                "(was TOLLWAY_SALT_KEY / LITELLM_SALT_KEY changed?) and are not served: %s; "
                "start with the previous key, or re-encrypt with `tollway rotate-salt-key`",
                len(unreadable),
                ", ".join(unreadable),
            )

    # -- models ---------------------------------------------------------------------------

    async def add(
        self, name: str, params: dict[str, Any], info: dict[str, Any], created_by: str
    ) -> Deployment:
        model_id = str(info.get("id") or uuid.uuid4())
        if model_id in self.rows or model_id in self.config_ids:
            raise InvalidRequest(f"a model with id {model_id!r} exists", param="model_info.id")
        now = time.time()
        row = ModelRow(
            model_id=model_id,
            model_name=name,
            litellm_params=params,
            model_info={**info, "id": model_id},
            created_at=now,
            updated_at=now,
            created_by=created_by,
        )
        deployment = await self._checked(row)
        sealed = self._sealed(row)
        await self.db.put_model(sealed)
        self.rows[model_id] = sealed
        self._route(model_id, deployment)
        return deployment

    async def update(
        self, model_id: str, name: str | None, params: Mapping[str, Any], info: Mapping[str, Any]
    ) -> Deployment:
        old = self._stored(model_id)
        try:
            current = self._box.open_params(old.litellm_params)
        except SecretError:
            current = {}  # unreadable under this key: the update must give the secrets again
        merged = {k: v for k, v in {**current, **params}.items() if v is not None}
        row = msgspec.structs.replace(
            old,
            model_name=name or old.model_name,
            litellm_params=merged,
            model_info={**old.model_info, **info, "id": model_id},
            updated_at=time.time(),
        )
        deployment = await self._checked(row)
        sealed = self._sealed(row)
        await self.db.put_model(sealed)
        self.rows[model_id] = sealed
        self._route(model_id, deployment)
        return deployment

    async def delete(self, model_id: str) -> None:
        self._stored(model_id)
        await self.db.delete_model(model_id)
        del self.rows[model_id]
        self._route(model_id, None)

    def _stored(self, model_id: str) -> ModelRow:
        row = self.rows.get(model_id)
        if row is not None:
            return row
        if model_id in self.config_ids:
            raise InvalidRequest(
                f"model {model_id!r} is defined in the config file; change it there",
                param="id",
                code="config_model",
            )
        raise NotFound(f"model {model_id!r} not found", param="id", code="not_found")

    def is_stored(self, model_id: str) -> bool:
        return model_id in self.rows

    # -- credentials ----------------------------------------------------------------------

    async def put_credential(
        self, name: str, values: Mapping[str, Any], info: Mapping[str, Any], created_by: str
    ) -> CredentialRow:
        old = self.credentials.get(name)
        merged = dict(values)
        if old is not None:
            try:
                merged = {**self._box.open_params(old.credential_values), **values}
            except SecretError:
                merged = dict(values)
        api_base = merged.get("api_base")
        if api_base is not None:
            await self._check_base(str(api_base), "credential_values.api_base")
        now = time.time()
        row = CredentialRow(
            credential_name=name,
            credential_values=self._box.seal_params(merged),
            credential_info={**(old.credential_info if old else {}), **info},
            created_at=old.created_at if old else now,
            updated_at=now,
            created_by=old.created_by if old else created_by,
        )
        users = [r for r in self.rows.values() if _credential_of(r) == name]
        # Models using the credential are rebuilt with it before anything is stored.
        rebuilt = []
        self.credentials[name] = row
        try:
            for user in users:
                rebuilt.append(self._deployment(user))
        except (SecretError, ConfigError) as exc:
            if old is None:
                del self.credentials[name]
            else:
                self.credentials[name] = old
            raise InvalidRequest(f"the credential breaks a model using it: {exc}") from None
        await self.db.put_credential(row)
        for deployment in rebuilt:
            self._route(deployment.id, deployment)
        return row

    async def delete_credential(self, name: str) -> None:
        if name not in self.credentials:
            raise NotFound(f"credential {name!r} not found", param="credential_name")
        users = sorted(r.model_id for r in self.rows.values() if _credential_of(r) == name)
        if users:
            raise InvalidRequest(
                f"credential {name!r} is used by model(s) {', '.join(users)}; delete or change "
                "them first",
                param="credential_name",
            )
        await self.db.delete_credential(name)
        del self.credentials[name]

    # -- building -------------------------------------------------------------------------

    def _route(self, model_id: str, deployment: Deployment | None) -> None:
        """Swap what the router serves under ``model_id`` (None: nothing)."""
        self._router.remove(model_id)
        self._forget_price(model_id)
        if deployment is not None:
            self._router.add(deployment)

    async def _checked(self, row: ModelRow) -> Deployment:
        """Validate a plain-text row as a config entry would be, api_base included."""
        credential = row.litellm_params.get(CREDENTIAL_FIELD)
        if credential is not None and credential not in self.credentials:
            raise InvalidRequest(
                f"credential {credential!r} does not exist",
                param=f"litellm_params.{CREDENTIAL_FIELD}",
            )
        api_base = row.litellm_params.get("api_base")
        if api_base is not None:
            await self._check_base(str(api_base), "litellm_params.api_base")
        try:
            return self._build(row, row.litellm_params)
        except SecretError:
            raise InvalidRequest(
                f"credential {credential!r} cannot be decrypted with the current salt key",
                param=f"litellm_params.{CREDENTIAL_FIELD}",
            ) from None

    async def _check_base(self, url: str, param: str) -> None:
        try:
            await self._egress.check(url)
        except EgressDenied as exc:
            raise InvalidRequest(str(exc), param=param, code="api_base_denied") from None

    def _deployment(self, row: ModelRow) -> Deployment:
        """A stored (sealed) row as a deployment; raises ``SecretError``."""
        return self._build(row, self._box.open_params(row.litellm_params))

    def _build(self, row: ModelRow, params: Mapping[str, Any]) -> Deployment:
        full = dict(params)
        credential = full.pop(CREDENTIAL_FIELD, None)
        if credential is not None and credential in self.credentials:
            values = self._box.open_params(self.credentials[credential].credential_values)
            full = {**values, **full}
        try:
            entry = msgspec.convert(
                {
                    "model_name": row.model_name,
                    "litellm_params": full,
                    "model_info": row.model_info,
                },
                ModelEntry,
                strict=False,
            )
        except msgspec.ValidationError as exc:
            raise InvalidRequest(str(exc).replace("$.", "")) from None
        try:
            return build_deployment(0, entry, self._router_settings, self._settings, self._custom)
        except ConfigError as exc:
            raise InvalidRequest(str(exc).removeprefix("model_list[0].")) from None

    def _sealed(self, row: ModelRow) -> ModelRow:
        return msgspec.structs.replace(
            row, litellm_params=self._box.seal_params(row.litellm_params)
        )

    def _opens(self, params: dict[str, Any]) -> bool:
        try:
            self._box.open_params(params)
        except SecretError:
            return False
        return True


def _credential_of(row: ModelRow) -> str | None:
    value = row.litellm_params.get(CREDENTIAL_FIELD)
    return value if isinstance(value, str) else None


def store_model_in_db(config: Config, environ: Mapping[str, str]) -> bool:
    if config.general_settings.store_model_in_db is not None:
        return config.general_settings.store_model_in_db
    return environ.get("STORE_MODEL_IN_DB", "").strip().lower() in ("1", "true", "yes")


def build_runtime_models(
    config: Config,
    settings: Settings,
    router: Router,
    custom: Collection[str],
    environ: Mapping[str, str],
    forget_price: Callable[[str], None] | None = None,
) -> RuntimeModels | None:
    """The run-time model registry when ``store_model_in_db`` is on (it needs a master key:
    without one the admin API is off), else None."""
    if not store_model_in_db(config, environ) or not settings.master_key:
        return None
    material = salt_key(environ, settings.master_key)
    assert material is not None
    return RuntimeModels(
        router,
        config.router_settings,
        settings,
        SecretBox(material),
        EgressPolicy.from_environ(environ),
        custom,
        forget_price,
    )

"""The admin web UI (``/ui``) and the API docs (``/docs``, ``/openapi.json``).

``mount`` adds the routes to the gateway's web app; nothing here touches the inference path.
With no master key the UI is off: ``/ui`` answers 403 saying so, and no session can exist.
The modules that do the work (sessions, pages) are imported only when the UI is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.applications import Starlette

from ..admin.common import AdminState
from .settings import UiSettings

__all__ = ["UiSettings", "mount", "startup_line"]


def startup_line(master_key: str | None, base_url: str, environ: Mapping[str, str]) -> str:
    """The line the CLI prints at start-up: where the UI is, or why it is off."""
    ui = UiSettings.from_environ(environ, master_key)
    if ui.enabled:
        return f"tollway admin UI on {base_url}/ui (API docs on {base_url}/docs)"
    return f"tollway admin UI off: {ui.off_reason} (API docs on {base_url}/docs)"


def mount(
    state: AdminState,
    web: Starlette,
    config: Callable[[], object],
    environ: Mapping[str, str],
) -> None:
    """Add the UI's and the docs' routes to ``web``; with the UI on, also the session layer
    that lets the UI's cookie (with its CSRF header) authenticate admin API calls."""
    from .assets import Assets
    from .docs import docs_routes

    ui = UiSettings.from_environ(environ, state.settings.master_key)
    assets = Assets()
    routes = docs_routes(assets, lambda: web.router.routes)
    if ui.enabled:
        from .routes import ui_routes
        from .session import SessionAuth, SessionCodec

        codec = SessionCodec(ui.secret, state.clock.time, state.settings.master_key or "")
        routes += ui_routes(state, ui, codec, config, assets)
        web.add_middleware(SessionAuth, codec=codec)
    else:
        from .routes import disabled_routes

        routes += disabled_routes(ui.off_reason)
    web.router.routes.extend(routes)

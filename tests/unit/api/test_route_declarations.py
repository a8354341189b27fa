from __future__ import annotations

from starlette.routing import Route

from ccat_api.api.routing import LiteralPathRefusal
from ccat_api.app import create_app
from ccat_api.config import Settings
from tests.routes import FRAMEWORK_PATHS, api_routes, requirement


def _app_routes() -> tuple[list[str], list[str]]:
    app = create_app(Settings(development=True))
    routes = api_routes(app)
    assert len(routes) > 20  # the walk found the app's routes at all
    undeclared = [f"{r.method} {r.path}" for r in routes if requirement(r.dependant) is None]
    others = [
        r.path
        for r in app.routes
        if isinstance(r, Route)
        and r.path not in FRAMEWORK_PATHS
        and not isinstance(r, LiteralPathRefusal)  # they only answer 405, before any route
    ]
    return undeclared, others


def test_every_route_declares_a_permission_or_that_it_is_public() -> None:
    undeclared, _ = _app_routes()
    assert undeclared == []


def test_no_route_bypasses_the_api_router() -> None:
    _, others = _app_routes()
    assert others == []


def test_public_routes_are_only_health_the_login_flow_and_the_console_page() -> None:
    app = create_app(Settings(development=True))
    public = sorted(
        r.path for r in api_routes(app) if (found := requirement(r.dependant)) and found.public
    )
    assert public == [
        "/auth/github/callback",
        "/auth/github/login",
        "/auth/refresh",
        "/console",
        "/console/{name}",
        "/health",
    ]


def test_literal_paths_refuse_only_the_methods_a_siblings_template_brings() -> None:
    app = create_app(Settings(development=True))
    refusals = {
        (r.path, tuple(sorted(r.methods or ())))
        for r in app.routes
        if isinstance(r, LiteralPathRefusal)
    }
    assert refusals == {
        ("/executed_obs_units/start", ("GET", "HEAD")),
        ("/raw_data_files/bulk", ("GET", "HEAD")),
    }

"""What each route of the app declares it needs, read from its dependency tree (what FastAPI
actually runs), so a route that forgets to declare anything is caught."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ccat_api.api.deps import Authorize, public
from ccat_api.auth.permissions import Permission

# Served by FastAPI itself: the OpenAPI document and its viewers.
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@dataclass(frozen=True)
class Requirement:
    public: bool
    authorizes: bool
    permission: Permission | None


def requirement(dependant: Dependant) -> Requirement | None:
    for dependency in dependant.dependencies:
        if dependency.call is public:
            return Requirement(public=True, authorizes=False, permission=None)
        if isinstance(dependency.call, Authorize):
            return Requirement(public=False, authorizes=True, permission=dependency.call.permission)
        found = requirement(dependency)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    dependant: Dependant

    @property
    def method(self) -> str:
        return sorted(self.methods - {"HEAD"})[0]

    def sample_path(self) -> str:
        """The path with plausible values for its parameters."""
        values: dict[str, Any] = {}
        for param in self.dependant.path_params:
            annotation = param.field_info.annotation
            values[param.name] = uuid.uuid4() if annotation is uuid.UUID else 1
        return self.path.format(**values)


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API route with its full path and the dependencies FastAPI resolves for it
    (routers included into the app are expanded; FastAPI keeps them as wrappers)."""
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append(RouteInfo(route.path, frozenset(route.methods or ()), route.dependant))
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                if context.dependant is not None:
                    found.append(
                        RouteInfo(context.path, frozenset(context.methods or ()), context.dependant)
                    )
    return found

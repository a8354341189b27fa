"""What each route of the app declares it needs, read from its dependency tree (what FastAPI
actually runs), so a route that forgets to declare anything is caught."""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from pydantic import AwareDatetime, BaseModel, ValidationError

from ccat_api.api.deps import Authorize, public
from ccat_api.api.routing import every_route
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

    def sample_path(self, **values: Any) -> str:
        """The path with plausible values for its parameters, or the ones given."""
        for param in self.dependant.path_params:
            if param.name not in values:
                annotation = param.field_info.annotation
                values[param.name] = uuid.uuid4() if annotation is uuid.UUID else 1
        return self.path.format(**values)

    @property
    def body_model(self) -> type[BaseModel] | None:
        for param in self.dependant.body_params:
            kind = _bare(param.field_info.annotation)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                return kind
        return None

    def integers(self) -> list[Slot]:
        """Every integer the route takes: in its path, its query string or its body (nested
        models and lists of them included)."""
        return self.slots(int)

    def slots(self, kind: type) -> list[Slot]:
        """Every value of type ``kind`` the route takes, wherever it sits."""
        found = [
            Slot("path", (p.name,), is_id=True)
            for p in self.dependant.path_params
            if _bare(p.field_info.annotation) is kind
        ]
        for param in self.dependant.query_params:
            bare = _bare(param.field_info.annotation)
            if isinstance(bare, type) and issubclass(bare, BaseModel):
                found += [Slot("query", keys, is_id) for keys, is_id in _model_slots(bare, kind)]
            elif bare is kind:
                found.append(Slot("query", (param.alias,), _names_an_id(param.name)))
        if self.body_model is not None:
            found += [Slot("body", k, is_id) for k, is_id in _model_slots(self.body_model, kind)]
        return found

    def integer_ids(self) -> list[Slot]:
        return [slot for slot in self.integers() if slot.is_id]

    def refuses(self, slot: Slot, value: Any) -> bool:
        """Whether validation alone (no request, no database) refuses ``value`` there."""
        if slot.where == "body":
            assert self.body_model is not None
            return _model_refuses(self.body_model, slot, value)
        params = self.dependant.path_params + self.dependant.query_params
        for param in params:
            if param.alias == slot.keys[0]:
                return bool(param.validate(value, {}, loc=(slot.where,))[1])
        for param in params:
            kind = _bare(param.field_info.annotation)
            is_model = isinstance(kind, type) and issubclass(kind, BaseModel)
            if is_model and slot.keys[0] in kind.model_fields:
                return _model_refuses(kind, slot, value)
        raise LookupError(f"{self.path}: no parameter {slot.field}")


@dataclass(frozen=True)
class Slot:
    """Where a route takes a value, and the name its validation errors give it."""

    where: Literal["path", "query", "body"]
    keys: tuple[str | int, ...]
    is_id: bool

    @property
    def field(self) -> str:
        name = ""
        for key in self.keys:
            name += f"[{key}]" if isinstance(key, int) else (f".{key}" if name else key)
        return name

    def body(self, value: Any) -> Any:
        """A body holding ``value`` at this slot (and nothing else)."""
        built: Any = value
        for key in reversed(self.keys):
            built = [built] if isinstance(key, int) else {key: built}
        return built


def _model_refuses(model: type[BaseModel], slot: Slot, value: Any) -> bool:
    try:
        model.model_validate(slot.body(value))
    except ValidationError as exc:
        return any(tuple(e["loc"]) == slot.keys for e in exc.errors())
    return False


def _bare(annotation: Any) -> Any:
    """``X`` from ``X``, ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        if annotation is AwareDatetime:  # a datetime that must carry its offset
            return datetime
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _names_an_id(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def _model_slots(
    model: type[BaseModel], kind: type, prefix: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], bool]]:
    for name, field in model.model_fields.items():
        key = (*prefix, field.alias or name)
        bare = _bare(field.annotation)
        if get_origin(bare) is list:
            (item,) = get_args(bare)
            bare, key = _bare(item), (*key, 0)
        if bare is kind:
            yield key, _names_an_id(name)
        elif isinstance(bare, type) and issubclass(bare, BaseModel):
            yield from _model_slots(bare, kind, key)


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API route with its full path and the dependencies FastAPI resolves for it
    (routers included into the app are expanded; FastAPI keeps them as wrappers)."""
    found = []
    for route in every_route(app.routes):
        if getattr(route, "dependant", None) is not None:
            found.append(RouteInfo(route.path, frozenset(route.methods or ()), route.dependant))
    return found

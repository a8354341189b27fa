"""Users and service accounts (admin), and one's own preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from pydantic import AfterValidator, BaseModel, Field

from ccat_api.api import examples
from ccat_api.api.deps import AccountAccess, RuntimeDep, UsersAccess, account_id
from ccat_api.api.responses import documented
from ccat_api.api.routing import CheckedRoute
from ccat_api.auth.users import (
    create_service_account,
    get_preferences,
    list_users,
    set_preferences,
    update_user,
)
from ccat_api.schemas.inputs import IdParam, Strict, json_safe
from ccat_api.schemas.inputs import examples as with_examples

router = APIRouter(route_class=CheckedRoute, tags=["users"])

MAX_PREFERENCES_BYTES = 64 * 1024


class UserRead(BaseModel):
    id: int
    login: str
    name: str
    email: str | None
    role: str
    active: bool
    github_id: int | None
    created_at: datetime
    last_login_at: datetime | None


class ServiceAccountCreate(Strict):
    model_config = with_examples({"login": "prime-cam-daq", "role": "service"})

    login: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    role: str = Field(min_length=1, max_length=50)
    name: str = Field(default="", max_length=200)


class UserUpdate(Strict):
    model_config = with_examples({"role": "observer"}, {"active": False})

    role: str | None = Field(default=None, min_length=1, max_length=50)
    active: bool | None = None


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    json_safe(value, "preferences")
    if len(orjson.dumps(value)) > MAX_PREFERENCES_BYTES:
        raise ValueError(f"preferences: larger than {MAX_PREFERENCES_BYTES} bytes")
    return value


Preferences = Annotated[dict[str, Any], AfterValidator(_bounded)]


@router.get(
    "/users",
    response_model=list[UserRead],
    responses=documented([examples.USER], 401, 403, 503),
    summary="All users (admin)",
)
async def users(_: UsersAccess, runtime: RuntimeDep) -> list[UserRead]:
    return [UserRead.model_validate(r._mapping) for r in await list_users(runtime.read_db)]


@router.post(
    "/users",
    status_code=201,
    response_model=UserRead,
    responses=documented(examples.USER, 401, 403, 409, 422, 503, status=201),
    summary="Create a service account, e.g. for an instrument (admin)",
)
async def create_user(body: ServiceAccountCreate, _: UsersAccess, runtime: RuntimeDep) -> UserRead:
    row = await create_service_account(runtime.main_db, body.login, body.role, body.name)
    return UserRead.model_validate(row._mapping)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses=documented(examples.USER, 401, 403, 404, 422, 503),
    summary="Change a user's role or disable the account (admin)",
)
async def change_user(
    user_id: IdParam, body: UserUpdate, _: UsersAccess, runtime: RuntimeDep
) -> UserRead:
    row = await update_user(runtime.main_db, user_id, role=body.role, active=body.active)
    return UserRead.model_validate(row._mapping)


@router.get(
    "/users/me/preferences",
    # 400: the development token has no account to keep preferences for.
    responses=documented(examples.PREFERENCES, 400, 401, 403, 503),
    summary="My preferences (a JSON object)",
)
async def my_preferences(identity: AccountAccess, runtime: RuntimeDep) -> dict[str, Any]:
    return await get_preferences(runtime.read_db, account_id(identity))


@router.put(
    "/users/me/preferences",
    responses=documented(examples.PREFERENCES, 400, 401, 403, 422, 503),
    summary="Replace my preferences (a JSON object of at most 64 KiB)",
)
async def replace_my_preferences(
    preferences: Annotated[Preferences, Body()], identity: AccountAccess, runtime: RuntimeDep
) -> dict[str, Any]:
    await set_preferences(runtime.main_db, account_id(identity), preferences)
    return preferences

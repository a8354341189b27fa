"""Permissions (``action:resource``) and how a request's identity gets them.

What each role grants lives in the database (``role_permissions``, seeded by a migration) and
is read from the site's replica like any other data. A token can be narrowed further by its
scopes; an identity's permissions are its role's, intersected with its token's scopes.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    READ_OBSERVATIONS = "read:observations"
    WRITE_OBSERVATIONS = "write:observations"
    READ_BUFFER = "read:buffer"
    OPERATE_BUFFER = "operate:buffer"
    MANAGE_USERS = "manage:users"
    MANAGE_TOKENS = "manage:tokens"
    MANAGE_ACCOUNT = "manage:account"
    MANAGE_CATALOG = "manage:catalog"
    MANAGE_STAGING = "manage:staging"


def effective_permissions(
    role_permissions: frozenset[str], scopes: list[str] | None
) -> frozenset[str]:
    return role_permissions if scopes is None else role_permissions & frozenset(scopes)

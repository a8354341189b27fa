"""Roles and the permissions (``action:resource``) each grants.

operator is what instruments use: it may post critical writes. viewer reads. Dead-letter
actions (retry, discard) change what reaches main, so only admin has ``operate:buffer``.
"""

from __future__ import annotations

from enum import StrEnum

from ccat_api.db.models import Role


class Permission(StrEnum):
    READ_OBSERVATIONS = "read:observations"
    WRITE_OBSERVATIONS = "write:observations"
    READ_BUFFER = "read:buffer"
    OPERATE_BUFFER = "operate:buffer"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {Permission.READ_OBSERVATIONS, Permission.WRITE_OBSERVATIONS, Permission.READ_BUFFER}
    ),
    Role.VIEWER: frozenset({Permission.READ_OBSERVATIONS, Permission.READ_BUFFER}),
}


def role_allows(role: str, permission: Permission) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False

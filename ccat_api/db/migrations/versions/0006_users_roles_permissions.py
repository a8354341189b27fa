"""users, roles and permissions; tokens belong to users and may be scoped; sessions, preferences

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Roles and their permissions live in the database (seeded here), so a site reads them from its
replica like everything else and an administrator can change them without a release. Tokens
made before this revision get a service-account user of the token's role each.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSIONS = {
    "read:observations": "Read observatory records and reference data",
    "write:observations": "Post critical writes (observations, files, packages)",
    "read:buffer": "Read transaction states and buffer statistics",
    "operate:buffer": "Retry or discard dead-lettered transactions",
    "manage:users": "List, create and change users and service accounts",
    "manage:tokens": "List and revoke anyone's API tokens, create tokens for others",
    "manage:account": "Read one's own account, manage one's own tokens and preferences",
}

ROLES = {
    "admin": ("Everything", list(PERMISSIONS)),
    "operator": (
        "Telescope operators: run observations, watch the buffer",
        ["read:observations", "write:observations", "read:buffer", "manage:account"],
    ),
    "service": (
        "Instruments and scripts writing observations",
        ["read:observations", "write:observations", "read:buffer"],
    ),
    "observer": (
        "Scientists following observations and the buffer",
        ["read:observations", "read:buffer", "manage:account"],
    ),
    "viewer": ("Read-only dashboards", ["read:observations", "manage:account"]),
}


def upgrade() -> None:
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )
    permissions = op.create_table(
        "permissions",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_permissions")),
    )
    role_permissions = op.create_table(
        "role_permissions",
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("permission", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["permission"],
            ["permissions.name"],
            name=op.f("fk_role_permissions_permission_permissions"),
        ),
        sa.ForeignKeyConstraint(
            ["role"], ["roles.name"], name=op.f("fk_role_permissions_role_roles")
        ),
        sa.PrimaryKeyConstraint("role", "permission", name=op.f("pk_role_permissions")),
    )
    op.bulk_insert(permissions, [{"name": n, "description": d} for n, d in PERMISSIONS.items()])
    op.bulk_insert(roles, [{"name": n, "description": d} for n, (d, _) in ROLES.items()])
    op.bulk_insert(
        role_permissions,
        [{"role": r, "permission": p} for r, (_, perms) in ROLES.items() for p in perms],
    )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.Text(), nullable=False),
        sa.Column("github_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["role"], ["roles.name"], name=op.f("fk_users_role_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
        sa.UniqueConstraint("github_id", name=op.f("uq_users_github_id")),
    )

    op.add_column("api_tokens", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column("api_tokens", sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=True))
    op.execute(
        "INSERT INTO users (login, name, role) SELECT 'token-' || prefix, name, role"
        " FROM api_tokens"
    )
    op.execute(
        "UPDATE api_tokens AS t SET user_id = u.id FROM users AS u"
        " WHERE u.login = 'token-' || t.prefix"
    )
    op.alter_column("api_tokens", "user_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_api_tokens_user_id_users"), "api_tokens", "users", ["user_id"], ["id"]
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.drop_constraint(op.f("ck_api_tokens_role_allowed"), "api_tokens", type_="check")
    op.drop_column("api_tokens", "role")

    op.create_table(
        "user_sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("refresh_hash", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("refresh_hash", name=op.f("uq_user_sessions_refresh_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "preferences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_preferences")),
    )


def downgrade() -> None:
    op.drop_table("user_preferences")
    op.drop_table("user_sessions")
    op.add_column("api_tokens", sa.Column("role", sa.Text(), nullable=True))
    op.execute("UPDATE api_tokens AS t SET role = u.role FROM users AS u WHERE u.id = t.user_id")
    op.alter_column("api_tokens", "role", nullable=False)
    op.drop_index(op.f("ix_api_tokens_user_id"), "api_tokens")
    op.drop_constraint(op.f("fk_api_tokens_user_id_users"), "api_tokens", type_="foreignkey")
    op.drop_column("api_tokens", "scopes")
    op.drop_column("api_tokens", "user_id")
    op.drop_table("users")
    op.drop_table("role_permissions")
    op.drop_table("permissions")
    op.drop_table("roles")

"""Accounts on main: ``tokens create|list|revoke`` and ``users create|list``, straight on
the main database (the same operations are on the REST API)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer

from ccat_api.config import Settings, load_settings
from ccat_api.db.engines import PrimaryDatabase
from ccat_api.errors import CcatError

T = TypeVar("T")

tokens_app = typer.Typer(no_args_is_help=True, help="Create and revoke API tokens (on main).")
users_app = typer.Typer(no_args_is_help=True, help="Service accounts and users (on main).")


def _main_database(settings: Settings, purpose: str) -> PrimaryDatabase:
    from ccat_api.db.engines import make_engine

    return PrimaryDatabase(
        make_engine(
            settings.main_db_url, pool_size=1, connect_timeout_s=10, application_name=purpose
        )
    )


async def on_main(
    settings: Settings, purpose: str, work: Callable[[PrimaryDatabase], Awaitable[T]]
) -> T:
    db = _main_database(settings, purpose)
    try:
        return await work(db)
    finally:
        await db.dispose()


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="Login of the user or service account")],
    role: Annotated[
        str | None,
        typer.Option(help="Create the service account with this role if it does not exist"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="What the token is for")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="Limit the token to a permission (repeatable)")
    ] = None,
    expires_days: Annotated[int | None, typer.Option(help="Lifetime in days")] = None,
) -> None:
    """Create a token on main; the secret is printed once and never stored."""
    import sqlalchemy as sa

    from ccat_api.auth.tokens import ensure_service_account, issue_token
    from ccat_api.db.models import User

    settings = load_settings()
    expires_at = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None

    async def work(db: PrimaryDatabase) -> str:
        if role is not None:
            user_id = await ensure_service_account(db, user, role)
        else:
            async with db.connect() as conn:
                found = await conn.scalar(sa.select(User.id).where(User.login == user))
            if found is None:
                raise typer.BadParameter(f"no user {user!r}; pass --role to create it")
            user_id = int(found)
        issued = await issue_token(
            db, user_id=user_id, name=name or user, scopes=scope or None, expires_at=expires_at
        )
        return issued.plaintext

    try:
        typer.echo(asyncio.run(on_main(settings, "tokens", work)))
    except CcatError as exc:
        raise typer.BadParameter(exc.message) from None


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens")] = None,
) -> None:
    """Tokens on main (never their secrets)."""
    import sqlalchemy as sa

    from ccat_api.db.models import ApiToken, User

    settings = load_settings()

    async def work(db: PrimaryDatabase) -> list[Any]:
        query = (
            sa.select(
                ApiToken.id, User.login, ApiToken.name, ApiToken.prefix, ApiToken.scopes,
                ApiToken.expires_at, ApiToken.revoked_at, ApiToken.last_used_at,
            )
            .join(User, User.id == ApiToken.user_id)
            .order_by(ApiToken.id)
        )  # fmt: skip
        if user is not None:
            query = query.where(User.login == user)
        async with db.connect() as conn:
            return list(await conn.execute(query))

    for row in asyncio.run(on_main(settings, "tokens", work)):
        state = "revoked" if row.revoked_at else "active"
        scopes = ",".join(row.scopes) if row.scopes is not None else "(role)"
        typer.echo(
            f"{row.id:>5}  {row.login:<24} {row.prefix}  {state:<7} scopes={scopes}"
            f"  last_used={row.last_used_at or '-'}  name={row.name}"
        )


@tokens_app.command("revoke")
def tokens_revoke(prefix: Annotated[str, typer.Argument(help="The token's public prefix")]) -> None:
    """Revoke a token by its prefix (the part after ``ccat_``)."""
    from ccat_api.auth.tokens import revoke_token_by_prefix

    settings = load_settings()
    if not asyncio.run(on_main(settings, "tokens", lambda db: revoke_token_by_prefix(db, prefix))):
        typer.echo(f"no active token with prefix {prefix}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked {prefix}")


@users_app.command("create")
def users_create(
    login: Annotated[str, typer.Argument(help="The service account's login")],
    role: Annotated[str, typer.Option(help="admin | operator | service | observer | viewer")],
    name: Annotated[str, typer.Option(help="A readable name")] = "",
) -> None:
    """Create a service account (people are created when they first log in with GitHub)."""
    from ccat_api.auth.users import create_service_account

    settings = load_settings()
    try:
        row = asyncio.run(
            on_main(settings, "users", lambda db: create_service_account(db, login, role, name))
        )
    except CcatError as exc:
        raise typer.BadParameter(exc.message) from None
    typer.echo(f"created user {row.id} {row.login} ({row.role})")


@users_app.command("list")
def users_list() -> None:
    """Users and service accounts on main."""
    import sqlalchemy as sa

    from ccat_api.auth.users import USER_COLUMNS

    settings = load_settings()

    async def work(db: PrimaryDatabase) -> list[Any]:
        async with db.connect() as conn:
            return list(await conn.execute(sa.select(*USER_COLUMNS).order_by(USER_COLUMNS[0])))

    for row in asyncio.run(on_main(settings, "users", work)):
        status = "active" if row.active else "disabled"
        typer.echo(f"{row.id:>5}  {row.login:<24} {row.role:<9} {status}")

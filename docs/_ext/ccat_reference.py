"""The docs' reference pages, written from the code at every build so they cannot go stale.

A page holds a fenced block naming what to generate::

    ```{ccat-reference} settings
    ```

and before MyST reads the page the block is replaced by Markdown written from the Settings
model (``settings``: every ``CCAT_*`` name, type, default and description, from the same
entries ``ccat-api config example`` writes ``.env.example`` from), the app's OpenAPI
document (``api``: every operation of a main and a secondary site's app, who may call it and
what it answers), the typer commands (``cli``: each command's usage, help and options) or
the alert rules that ship (``alerts``: each with its runbook section).
Nothing generated is committed; ``make docs`` builds from a fresh environment (``-E``).
"""

from __future__ import annotations

import enum
import functools
import logging
import re
import tomllib
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

BLOCK = re.compile(r"^```\{ccat-reference\}[ \t]+(?P<kind>\S+)[ \t]*\n```[ \t]*$", re.M)


# --- Markdown -------------------------------------------------------------------------------

# Outside code spans, everything CommonMark or MyST could read as markup (emphasis, links,
# raw HTML, roles) is escaped, so help texts and descriptions read as written; a table's `|`
# is cell()'s job, since GFM wants it escaped inside code spans too.
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_SPECIAL = re.compile(r"([\\*_\[\]<>{}#$~])")


def text(value: str) -> str:
    """Prose from the code as Markdown: code spans kept, anything else literal."""
    out, last = [], 0
    for span in _CODE_SPAN.finditer(value):
        out.append(_SPECIAL.sub(r"\\\1", value[last : span.start()]))
        out.append(span.group(0))
        last = span.end()
    out.append(_SPECIAL.sub(r"\\\1", value[last:]))
    return "".join(out)


def code(value: object) -> str:
    """An inline code span holding ``value`` exactly, however many backticks it contains."""
    literal = str(value)
    if not literal:
        return "(empty)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", literal)), default=0) + 1)
    pad = " " if literal.startswith("`") or literal.endswith("`") else ""
    return f"{fence}{pad}{literal}{pad}{fence}"


def cell(value: str) -> str:
    """A table cell: one line, and ``|`` escaped even inside code spans (GFM tables)."""
    return " ".join(value.split()).replace("|", "\\|")


def paragraphs(help_text: str) -> list[str]:
    """A docstring's paragraphs; one laid out in columns is kept as a text block."""
    blocks = []
    for paragraph in re.split(r"\n\s*\n", help_text.strip()):
        lines = paragraph.splitlines()
        if any(re.search(r"\S {2,}\S", line) for line in lines):
            blocks.append("```text\n" + paragraph + "\n```")
        else:
            blocks.append(text(" ".join(line.strip() for line in lines)))
    return blocks


# --- configuration --------------------------------------------------------------------------


def _constraints(metadata: Iterable[object]) -> list[str]:
    signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    found = []
    for item in metadata:
        for name, sign in signs.items():
            if getattr(item, name, None) is not None:
                found.append(f"{sign} {getattr(item, name)}")
        for name in ("min_length", "max_length"):
            if getattr(item, name, None) is not None:
                found.append(f"{name.replace('_', ' ')} {getattr(item, name)}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            found.append(f"pattern {code(pattern)}")
    return found


def type_text(annotation: Any) -> str:
    """A field's type as a reader writes it: ``int | None``, ``list[str]``, ``main | secondary``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        limits = _constraints(metadata)
        return type_text(inner) + (f" ({', '.join(limits)})" if limits else "")
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in get_args(annotation))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_text(arg) for arg in get_args(annotation))}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(str(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def settings_markdown() -> str:
    from ccat_api.config import DEFAULT_SETTINGS_FILE, Settings, env_entries
    from ccat_api.config_access import AccessSettings
    from ccat_api.config_sources import ENV_PREFIX, LAYER_ENV_NAMES, TOOL_ENV_NAMES

    with DEFAULT_SETTINGS_FILE.open("rb") as file:
        sections: dict[str, dict[str, Any]] = tomllib.load(file)
    groups: dict[str, list[str]] = {
        "Choosing the layers": [],
        "Site, services and tuning": [],
        "Access and login": [],
    }
    for env_name, description, default in env_entries():
        field_name = env_name.removeprefix(ENV_PREFIX).lower()
        field = Settings.model_fields.get(field_name)
        lines = [f"### {env_name}", "", text(description), ""]
        if field is None:
            group = "Choosing the layers"
            lines.append("- read from the environment or `.env` only; no default")
        else:
            group = (
                "Access and login"
                if field_name in AccessSettings.model_fields
                else "Site, services and tuning"
            )
            kind = type_text(field.annotation)
            limits = _constraints(field.metadata)
            lines.append(f"- type: {code(kind)}" + (f", {', '.join(limits)}" if limits else ""))
            lines.append(f"- default: {code(default)}")
            shipped = [
                f"`[{section}]` {code(values[field_name])}"
                for section, values in sections.items()
                if field_name in values
            ]
            if shipped:
                lines.append(f"- `ccat_api/settings.toml` sets: {'; '.join(shipped)}")
        groups[group].extend([*lines, ""])
    out = []
    for title, lines in groups.items():
        out.extend([f"## {title}", "", *lines])
    out.extend(
        [
            "## Read by other programs",
            "",
            "Not settings: read from the process environment by the CLI's client commands and"
            " by the tests. A gateway never reads them, and does not refuse them.",
            "",
            "| variable | what it is |",
            "|---|---|",
            *(f"| {code(name)} | {cell(text(what))} |" for name, what in TOOL_ENV_NAMES.items()),
            "",
        ]
    )
    assert set(LAYER_ENV_NAMES) <= {name for name, _, _ in env_entries()}
    return "\n".join(out)


# --- API ------------------------------------------------------------------------------------


def _requirements(app: Any) -> dict[tuple[str, str], str]:
    """(method, path) -> who may call it, read from each route's dependency tree (what FastAPI
    runs), as the route table test does."""
    from ccat_api.api.deps import Authorize, public
    from ccat_api.api.routing import every_route

    def requirement(dependant: Any) -> str | None:
        for dependency in dependant.dependencies:
            if dependency.call is public:
                return "public (no token)"
            if isinstance(dependency.call, Authorize):
                needed = dependency.call.permission
                if needed is None:
                    return "bearer token, any authenticated identity"
                return f"bearer token with {code(needed.value)}"
            found = requirement(dependency)
            if found is not None:
                return found
        return None

    found = {}
    for route in every_route(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        needed = requirement(dependant) or "not declared"
        for method in route.methods or ():
            found[(method, route.path)] = needed
    return found


def _schema_link(name: str) -> str:
    from myst_parser.slugs import github_slugify

    return f"[{code(name)}](#{github_slugify(name)})"


def schema_text(schema: dict[str, Any]) -> str:
    """A JSON schema's type in a few words, linking named schemas."""
    if "$ref" in schema:
        return _schema_link(schema["$ref"].rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(schema_text(option) for option in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {schema_text(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {schema_text(schema['additionalProperties'])}"
    if "enum" in schema:
        return " or ".join(code(value) for value in schema["enum"])
    if "const" in schema:
        return code(schema["const"])
    words = str(kind or "any")
    if "format" in schema:
        words += f" ({schema['format']})"
    return code(words)


def _answer_text(response: dict[str, Any]) -> str:
    content = response.get("content", {})
    if not content:
        return "no body"
    media, body = next(iter(content.items()))
    schema = body.get("schema")
    described = schema_text(schema) if schema else "any"
    return described if media == "application/json" else f"{described} ({code(media)})"


@functools.cache
def site_apps() -> dict[str, Any]:
    """A main and a secondary site's app, as ``create_app`` builds them."""
    from ccat_api.app import create_app
    from ccat_api.config import Settings

    # Building the app connects to nothing (services start in its lifespan), so neither
    # site's database or Redis need exist. create_app configures logging: WARNING keeps
    # the build's output to Sphinx's own.
    return {
        "main": create_app(Settings(development=True, log_level="WARNING")),
        "secondary": create_app(
            Settings(
                development=True,
                log_level="WARNING",
                site_type="secondary",
                site_name="observatory",
                local_db_url="postgresql+asyncpg://ccat@replica.invalid/ccat",
                redis_url="redis://redis.invalid:6379/0",
            )
        ),
    }


def api_markdown() -> str:
    apps = site_apps()
    documents = {site: app.openapi() for site, app in apps.items()}
    requirements = {site: _requirements(app) for site, app in apps.items()}
    operations: dict[tuple[str, str], dict[str, Any]] = {}
    sites: dict[tuple[str, str], list[str]] = {}
    for site, document in documents.items():
        for path, item in document["paths"].items():
            for method, operation in item.items():
                key = (method.upper(), path)
                operations.setdefault(key, operation)
                sites.setdefault(key, []).append(site)
    by_tag: dict[str, list[tuple[str, str]]] = {}
    for key, operation in operations.items():
        by_tag.setdefault((operation.get("tags") or ["other"])[0], []).append(key)

    main_document = documents["main"]
    out = [
        f"OpenAPI {code(main_document['openapi'])}, {text(main_document['info']['title'])}"
        f" {code(main_document['info']['version'])}: {len(operations)} operations. Every"
        " gateway serves the same document at `/openapi.json` and an explorer at `/docs`.",
        "",
    ]
    for tag, keys in by_tag.items():
        out.extend([f"## {tag}", ""])
        for method, path in keys:
            operation = operations[(method, path)]
            out.extend([f"### {method} {code(path)}", ""])
            if operation.get("summary"):
                out.extend([text(operation["summary"]), ""])
            if operation.get("description"):
                out.extend([*paragraphs(operation["description"]), ""])
            at = sites[(method, path)]
            site = "main and secondary" if len(at) == 2 else f"{at[0]} only"
            needed = {requirements[name].get((method, path), "not declared") for name in at}
            out.append(f"- sites: {site}")
            out.append(f"- auth: {'; '.join(sorted(needed))}")
            params = operation.get("parameters", [])
            if params:
                described = ", ".join(
                    f"{code(param['name'])} ({param['in']}"
                    f"{', required' if param.get('required') else ''}:"
                    f" {schema_text(param.get('schema', {}))})"
                    for param in params
                )
                out.append(f"- parameters: {described}")
            body = operation.get("requestBody")
            if body:
                out.append(f"- request body: {_answer_text(body)}")
            out.extend(["", "| status | when | body |", "|---|---|---|"])
            for status, response in operation.get("responses", {}).items():
                out.append(
                    f"| {status} | {cell(text(response.get('description', '')))}"
                    f" | {cell(_answer_text(response))} |"
                )
            out.append("")
    # Both sites' schemas: an operation only one site serves may name one only it has.
    schemas: dict[str, dict[str, Any]] = {}
    for document in documents.values():
        for name, schema in document["components"]["schemas"].items():
            schemas.setdefault(name, schema)
    out.extend(["## Schemas", ""])
    for name, schema in sorted(schemas.items()):
        out.extend([f"### {name}", ""])
        if schema.get("description"):
            out.extend([*paragraphs(schema["description"]), ""])
        properties = schema.get("properties", {})
        if properties:
            required = set(schema.get("required", []))
            out.extend(["| field | type | required | description |", "|---|---|---|---|"])
            for field, spec in properties.items():
                out.append(
                    f"| {code(field)} | {cell(schema_text(spec))}"
                    f" | {'yes' if field in required else ''}"
                    f" | {cell(text(spec.get('description', '')))} |"
                )
        else:
            out.append(f"Type: {schema_text(schema)}")
        out.append("")
    return "\n".join(out)


# --- CLI ------------------------------------------------------------------------------------


def cli_markdown() -> str:
    import typer.main

    from ccat_api.cli import app

    out: list[str] = []

    def walk(command: Any, name: str, parent: Any, depth: int) -> None:
        context = command.context_class(command, info_name=name, parent=parent)
        if depth:
            out.extend([f"{'#' * min(depth + 1, 4)} {context.command_path}", ""])
        usage = command.get_usage(context).removeprefix("Usage:").strip()
        out.extend(["```text", usage, "```", ""])
        if command.help:
            for block in paragraphs(command.help):
                out.extend([block, ""])
        records = [param.get_help_record(context) for param in command.params]
        shown = [record for record in records if record is not None]
        if shown:
            out.extend(["| argument or option | what it does |", "|---|---|"])
            for names, what in shown:
                out.append(f"| {cell(code(names))} | {cell(text(what))} |")
            out.append("")
        subcommands = getattr(command, "commands", {})
        for subname, subcommand in subcommands.items():
            if not subcommand.hidden:
                walk(subcommand, subname, context, depth + 1)

    walk(typer.main.get_command(app), "ccat-api", None, 0)
    return "\n".join(out)


# --- alerts ---------------------------------------------------------------------------------

ALERTS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def alerts_markdown() -> str:
    """Every alert rule that ships, linked to its runbook section: a link to a missing page or
    heading fails the build, as it fails tests/devstack/test_alert_rules.py."""
    # PyYAML comes with astropy, a dependency of the package.
    import yaml  # type: ignore[import-untyped]

    loaded = yaml.safe_load(ALERTS_FILE.read_text())
    out = ["| alert | severity | runbook |", "|---|---|---|"]
    sections = []
    for group in loaded["groups"]:
        for rule in group["rules"]:
            name, notes = rule["alert"], rule["annotations"]
            runbook = notes["runbook_url"].removeprefix("docs/")
            link = f"[{text(runbook.removeprefix('runbooks/'))}](../{runbook})"
            held = f" for {rule['for']}" if rule.get("for") else ""
            out.append(f"| [{name}](#{name.lower()}) | {rule['labels']['severity']} | {link} |")
            sections.extend(
                [
                    f"## {name}",
                    "",
                    f"**{text(notes['summary'])}**",
                    "",
                    text(" ".join(notes["description"].split())),
                    "",
                    f"- severity: {rule['labels']['severity']}",
                    f"- fires when: {code(' '.join(rule['expr'].split()))}{held}",
                    f"- what to do: {link}",
                    "",
                ]
            )
    return "\n".join([*out, "", *sections])


GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_markdown,
    "api": api_markdown,
    "cli": cli_markdown,
    "alerts": alerts_markdown,
}


def _replace_blocks(app: Sphinx, docname: str, source: list[str]) -> None:
    def generated(match: re.Match[str]) -> str:
        kind = match.group("kind")
        if kind not in GENERATORS:
            raise ExtensionError(
                f"{docname}: ccat-reference {kind!r}: no such reference"
                f" (one of {', '.join(GENERATORS)})"
            )
        # The code logs at INFO while it is imported and the app built (alembic's plugins),
        # and furo's accessible-pygments sets the root logger to INFO: not the build's news.
        logging.disable(logging.INFO)
        try:
            return GENERATORS[kind]()
        finally:
            logging.disable(logging.NOTSET)

    source[0] = BLOCK.sub(generated, source[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _replace_blocks)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

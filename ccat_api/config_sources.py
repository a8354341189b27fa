"""Where settings come from, below the model in ``config.py``: the settings file's sections
(layered by dynaconf), ``.env`` and ``CCAT_*`` environment variables, each a pydantic-settings
source that refuses a name which is no setting, naming the nearest one. The ``CCAT_*`` names
that are not settings (reserved for choosing layers, or read by other programs) are listed
here."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
)

ENV_PREFIX = "CCAT_"


# CCAT_* names that are not settings, so never refused as misspelled ones. The first two
# choose what load_settings() layers and may also be set in .env.
LAYER_ENV_NAMES = {
    "CCAT_ENV": (
        "Which section of the settings file to layer over its [default] (the shipped file has"
        " main, secondary and development); unset: [default] alone."
    ),
    "CCAT_SETTINGS_FILE": "A settings file to read instead of ccat_api/settings.toml.",
}


# Read by other programs from the process environment only.
TOOL_ENV_NAMES = {
    "CCAT_FAILPOINTS": "fail points (crash or raise) armed by tests (ccat_api/failpoints.py)",
    "CCAT_FUZZ_EXAMPLES": "cases per operation in tests/integration/test_fuzz.py",
    "CCAT_FUZZ_SEED": "the seed of those cases",
    "CCAT_FUZZ_TIMEOUT_S": "the time the fuzz run may take",
    "CCAT_FUZZ_CHECKS": "the Schemathesis checks that fuzz run applies (exploring: all)",
    "CCAT_CHAOS_SEED": "the seed of the fault campaign (tests/integration/test_chaos.py)",
    "CCAT_CHAOS_WRITES": "how many writes that campaign makes",
    "CCAT_CHAOS_FAULTS": "how many faults it injects",
    "CCAT_SCHEMA_BACKLOG": "writes buffered in tests/integration/test_schema_changes.py",
    "CCAT_STACK_STATE": "where `ccat-api stack up` records the local stack it started",
    "CCAT_API_URL": "the gateway `ccat-api status` and `dead-letters` talk to",
    "CCAT_API_TOKEN": "the token they send",
}


RESERVED_ENV_NAMES = frozenset(LAYER_ENV_NAMES) | frozenset(TOOL_ENV_NAMES)


class UnknownSettingError(SettingsError):
    """A name that is no setting, where it was written, and the nearest valid name."""


def _refuse_unknown(names: Iterable[str], valid: Iterable[str], where: str) -> None:
    valid = list(valid)
    unknown = [name for name in names if name not in valid]
    if not unknown:
        return
    described = []
    for name in unknown:
        nearest = difflib.get_close_matches(name, valid, n=1)
        described.append(f"{name} (did you mean {nearest[0]}?)" if nearest else name)
    raise UnknownSettingError(f"{where}: not a setting: {', '.join(described)}")


def _refuse_unknown_variables(
    settings_cls: type[BaseSettings], env_vars: Mapping[str, str | None], where: str
) -> None:
    valid = {ENV_PREFIX + name.upper() for name in settings_cls.model_fields} | RESERVED_ENV_NAMES
    # Names arrive lower-cased (settings are case-insensitive); other programs' variables
    # (no CCAT_ prefix) are none of our business.
    ours = [name.upper() for name in env_vars if name.upper().startswith(ENV_PREFIX)]
    _refuse_unknown(ours, valid, where)


class EnvironmentSource(EnvSettingsSource):
    """``CCAT_*`` environment variables, refusing a name that is neither setting nor reserved."""

    def __call__(self) -> dict[str, Any]:
        _refuse_unknown_variables(self.settings_cls, self.env_vars, "environment variables")
        return super().__call__()


class DotEnvSource(DotEnvSettingsSource):
    """``.env`` in the working directory, refusing a ``CCAT_*`` name that is no setting."""

    def __call__(self) -> dict[str, Any]:
        _refuse_unknown_variables(self.settings_cls, self.env_vars, str(self.env_file))
        # The parent passes every other line through as an extra input for the model to
        # refuse, but the file may hold other programs' variables and the reserved names.
        return {
            name: value
            for name, value in super().__call__().items()
            if name in self.settings_cls.model_fields
        }


class SiteFileSource(PydanticBaseSettingsSource):
    """The settings file's [default], then the section ``CCAT_ENV`` names, layered by dynaconf.

    Every section is checked, not only the one in use, so a misspelled key fails before the
    day a site switches to its section.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path, environment: str) -> None:
        super().__init__(settings_cls)
        with path.open("rb") as file:
            sections = tomllib.load(file)
        for section, keys in sections.items():
            if not isinstance(keys, dict):
                raise SettingsError(f"{path}: {section} is outside a section such as [default]")
            _refuse_unknown(keys, settings_cls.model_fields, f"{path} [{section}]")
        environment = environment.lower()
        # dynaconf layers nothing for a section it does not find, which would quietly run a
        # site on another kind's settings.
        if environment != "default" and environment not in sections:
            nearest = difflib.get_close_matches(environment, list(sections), n=1)
            hint = f" (did you mean {nearest[0]}?)" if nearest else ""
            raise UnknownSettingError(f"CCAT_ENV={environment}: no [{environment}] in {path}{hint}")
        # loaders=[]: environment variables and .env are pydantic-settings' job, not dynaconf's.
        layered = Dynaconf(
            settings_files=[str(path)], environments=True, env=environment, loaders=[]
        )
        self.values = {key.lower(): value for key, value in layered.as_dict().items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)

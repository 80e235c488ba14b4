"""relay.yaml (schema v1): pydantic models, load + validate with YAML line numbers.

Every error names its line: ``relay.yaml:14: routes[1].to: unknown channel 'tema-slack' (did you
mean 'team-slack'?)``. Templates compile and routes resolve at load time, so a bad config fails at
load, not at 3 a.m.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    PositiveInt,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from relay.actions.model import Action
from relay.actions.settings import ActionSettings
from relay.channels import REGISTRY, ChannelSettings
from relay.confmodel import Duration, StrictModel, suggest
from relay.digest.settings import DigestSettings
from relay.matchers import MatchSpec, match_value_problems
from relay.mosaic.settings import MosaicSettings
from relay.render import Renderer, TemplateConfigError, check_syntax
from relay.render.settings import TemplateSettings
from relay.routelint import route_warnings
from relay.yamlsource import Located, YamlSourceError, interpolate, load_yaml

__all__ = [
    "AuthSettings",
    "ConfigError",
    "ConfigIssue",
    "DeliverySettings",
    "LoadedConfig",
    "MatchSpec",
    "RelayConfig",
    "RouteSettings",
    "ServerSettings",
    "StoreSettings",
    "load_config",
    "load_sections",
    "parse_config",
]


def _one_or_many(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    return value


StrList = Annotated[
    tuple[str, ...],
    BeforeValidator(_one_or_many),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
]
"""One name or a non-empty list of names."""


class ServerSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    path: str = "/webhooks/mosaic"
    max_body_bytes: PositiveInt = 1_048_576
    admin_token: SecretStr | None = None
    max_in_flight: PositiveInt = 512
    """Webhooks handled at once; beyond that the relay answers 503 + Retry-After."""
    read_timeout: Duration = Field(10.0, gt=0)
    """Slow-client limit: the headers (from connecting, or after the previous answer) and then
    the body must each arrive within it; an idle keep-alive connection is closed after it too."""
    workers: Literal["auto"] | PositiveInt = "auto"
    """Processes serving this port and store (docs/workers.md); ``auto`` = the CPUs it may use."""
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    """Reverse proxies in front (addresses or CIDR blocks): from them, the right-most
    ``X-Forwarded-For`` entry that is not one of them names the client (for the limit on wrong
    admin tokens). Empty: a client is its peer address, and ``X-Forwarded-For`` is ignored."""

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """ipaddress says what is wrong (``10.0.0.1/8 has host bits set``); pydantic would not."""
        for item in value if isinstance(value, list) else ():
            if isinstance(item, str):
                ipaddress.ip_network(item)
        return value


class AuthSettings(StrictModel):
    secrets: list[SecretStr] = []
    allow_unsigned: bool = False

    @field_validator("secrets", mode="before")
    @classmethod
    def _drop_empty(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [item for item in value if item not in (None, "")]
        return value


class StoreSettings(StrictModel):
    url: str = "sqlite:///relay.db"
    sync: Literal["full", "normal"] = "full"
    retention: Duration = 7 * 86400.0


class Backoff(StrictModel):
    initial: Duration = 1.0
    max: Duration = 300.0


class DeliverySettings(StrictModel):
    workers: PositiveInt = 8
    lease: Duration = 60.0
    max_attempts: PositiveInt = 8
    max_age: Duration = 86400.0
    backoff: Backoff = Backoff()
    shutdown_grace: Duration = 10.0
    per_channel: PositiveInt | None = None
    """Sends in flight for one channel at most (default: half the workers), so one slow channel
    never takes every worker."""


class RouteSettings(StrictModel):
    name: str | None = None
    match: MatchSpec | None = None
    not_: MatchSpec | None = Field(None, alias="not")
    to: StrList
    template: str | None = None
    stop: bool = False
    mode: Literal["post", "card", "digest"] = "post"
    thread: bool = False
    broadcast_failures: bool = False
    card_interval: Duration = 1.0
    digest: DigestSettings | None = None
    """With ``mode: digest``: when the window's one message per channel goes out."""
    actions: Annotated[tuple[Action, ...], BeforeValidator(_one_or_many)] = ()
    """Buttons on this route's messages (``resume``, ``cancel``, ``rerun``; see ``actions:``)."""

    @model_validator(mode="after")
    def _digest_with_its_mode(self) -> RouteSettings:
        if self.mode == "digest" and self.digest is None:
            raise ValueError("mode: digest needs digest: {schedule: CRON} or {every: DURATION}")
        if self.digest is not None and self.mode != "digest":
            raise ValueError("digest: is for mode: digest routes (add mode: digest)")
        return self


if TYPE_CHECKING:
    ChannelConfig = ChannelSettings
else:
    ChannelConfig = Annotated[
        Union[tuple(t.settings for t in REGISTRY.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]
    """Any registered channel's settings, chosen by ``type``."""


class RelayConfig(StrictModel):
    """The whole relay.yaml."""

    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    store: StoreSettings = StoreSettings()
    delivery: DeliverySettings = DeliverySettings()
    agents: dict[str, str] = {}
    channels: dict[str, ChannelConfig] = {}
    routes: list[RouteSettings] = []
    templates: dict[str, TemplateSettings] = {}
    mosaic: MosaicSettings = MosaicSettings()
    actions: ActionSettings = ActionSettings()


@dataclass(frozen=True)
class ConfigIssue:
    line: int | None
    where: str
    message: str
    warning: bool = False
    """A config that serves but likely not as meant (e.g. a route that can never match)."""

    def format(self, source: str) -> str:
        place = f"{source}:{self.line}" if self.line else source
        place += ": warning" if self.warning else ""
        return (
            f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"
        )


class ConfigError(Exception):
    """A config that cannot serve; ``issues`` lists every problem with its line."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__("\n".join(issue.format(source) for issue in issues))


@dataclass(frozen=True)
class LoadedConfig:
    config: RelayConfig
    path: Path
    base_dir: Path
    sha256: str
    unset_vars: tuple[str, ...]
    warnings: tuple[ConfigIssue, ...] = ()

    @property
    def source(self) -> str:
        return self.path.name


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, interpolate, validate and cross-check a relay.yaml; raise ``ConfigError``."""
    file, raw, text = _read_file(path)
    config, unset, warnings = _parse(text, file.name, env, file.absolute().parent)
    return LoadedConfig(
        config=config,
        path=file.absolute(),
        base_dir=file.absolute().parent,
        sha256=hashlib.sha256(raw).hexdigest(),
        unset_vars=unset,
        warnings=tuple(warnings),
    )


def load_sections(
    path: str | Path, sections: Collection[str], env: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Only ``sections`` of a relay.yaml (the rest left at defaults), validated.

    For commands that neither route nor send (``relay status``, ``dlq``, ``send-sample``): a
    channel's unset token must not stop them.
    """
    file, raw, text = _read_file(path)
    located = _read_yaml(text, file.name)
    located.data = {key: value for key, value in located.data.items() if key in sections}
    interpolate(located, env, file.absolute().parent)
    issues = _file_issues(located)
    config = None
    try:
        config = RelayConfig.model_validate(located.data)
    except ValidationError as exc:
        issues += _pydantic_issues(exc, located)
    if issues or config is None:
        raise ConfigError(file.name, _in_file_order(issues))
    return LoadedConfig(
        config=config,
        path=file.absolute(),
        base_dir=file.absolute().parent,
        sha256=hashlib.sha256(raw).hexdigest(),
        unset_vars=tuple(sorted(set(located.unset_vars.values()))),
    )


def _read_file(path: str | Path) -> tuple[Path, bytes, str]:
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(file), [ConfigIssue(None, "", f"cannot read: {exc.strerror or exc}")]
        ) from None
    try:
        return file, raw, raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(file.name, [ConfigIssue(None, "", "not UTF-8 text")]) from None


def parse_config(
    text: str, source: str = "relay.yaml", env: Mapping[str, str] | None = None
) -> tuple[RelayConfig, tuple[str, ...]]:
    """The validated config and the unset variables; ``ConfigError`` lists every error."""
    config, unset, _ = _parse(text, source, env)
    return config, unset


def _parse(
    text: str, source: str, env: Mapping[str, str] | None, base_dir: Path | None = None
) -> tuple[RelayConfig, tuple[str, ...], list[ConfigIssue]]:
    """Every check runs on every load, so one run reports every error (then the warnings)."""
    located = _read_yaml(text, source)
    interpolate(located, env, base_dir)
    unset = tuple(sorted(set(located.unset_vars.values())))
    issues = [
        *_file_issues(located),
        *_reference_issues(located),
        *_match_issues(located),
        *_secret_issues(located),
        *_template_issues(located),
    ]
    config = None
    try:
        config = RelayConfig.model_validate(located.data)
    except ValidationError as exc:
        issues += _pydantic_issues(exc, located)
    if issues or config is None:
        raise ConfigError(source, _in_file_order(issues))
    warnings = [
        ConfigIssue(located.line_of(path), dotted(path), message, warning=True)
        for path, message in route_warnings(
            config.routes,
            config.agents,
            config.channels,
            api_names=config.mosaic.api_enabled and config.mosaic.agent_names,
        )
    ]
    warnings += [
        ConfigIssue(located.line_of(path), dotted(path), message, warning=True)
        for path, message in _action_warnings(config)
    ]
    return config, unset, _in_file_order(warnings)


def _action_warnings(config: RelayConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Buttons a route offers that nobody may press, or that none of its channels can show."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    allow = config.actions.allow
    for index, route in enumerate(config.routes):
        if not route.actions:
            continue
        where: tuple[str | int, ...] = ("routes", index, "actions")
        for action in route.actions:
            listed = allow.get(action)
            if listed is None or not (listed.slack_users or listed.telegram_users):
                found.append((where, f"nobody may press {action}: actions.allow.{action} is empty"))
        shown = [
            name
            for name in route.to
            if (channel := config.channels.get(name)) is not None
            and (
                (channel.type == "slack" and getattr(channel, "webhook_url", None) is None)
                or channel.type == "telegram"
            )
        ]
        if not shown:
            found.append(
                (where, "no channel of this route shows buttons (Slack with a token, Telegram)")
            )
    return found


def _read_yaml(text: str, source: str) -> Located:
    try:
        located = load_yaml(text)
    except YamlSourceError as exc:
        raise ConfigError(source, [ConfigIssue(exc.line, "", exc.message)]) from None
    if located.data is None:
        located.data = {}
    if not isinstance(located.data, dict):
        raise ConfigError(source, [ConfigIssue(1, "", "the file must be a mapping of sections")])
    return located


def _in_file_order(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda issue: issue.line or 0)


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_issues(exc: ValidationError, located: Located) -> list[ConfigIssue]:
    issues = []
    seen = set()
    for error in exc.errors(include_url=False, include_input=False):
        loc = _yaml_path(error["loc"], located.data)
        if error["type"] == "union_tag_invalid":
            loc = (*loc, "type")
        message = _plain_message(error) + _unset_hint(loc, located)
        key = (loc, message)
        unreadable_below = any(path[: len(loc)] == loc for path in located.file_errors)
        if key in seen or unreadable_below:  # said once, as the secret file's error
            continue
        seen.add(key)
        issues.append(ConfigIssue(located.line_of(loc), dotted(loc), message))
    return issues


def _yaml_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """Drop pydantic's union tags (e.g. 'slack') that are not keys of the YAML data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in ("not_", "from_"):
            alias = part.rstrip("_")
            path.append(alias)
            node = node.get(alias)
        elif (
            isinstance(node, dict)
            and part not in REGISTRY
            and not str(part).startswith("function-")
        ):
            path.append(part)
            node = None
    return tuple(path)


def _plain_message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling)"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        return f"unknown channel type (one of: {', '.join(REGISTRY)})"
    if kind == "union_tag_not_found":
        return f"missing 'type' (one of: {', '.join(REGISTRY)})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _unset_hint(loc: tuple[str | int, ...], located: Located) -> str:
    """`` (environment variable X is not set)`` naming every unset variable under ``loc``."""
    names = sorted({name for path, name in located.unset_vars.items() if path[: len(loc)] == loc})
    if not names:
        return ""
    if len(names) == 1:
        return f" (environment variable {names[0]} is not set)"
    return f" (environment variables {', '.join(names)} are not set)"


def _file_issues(located: Located) -> list[ConfigIssue]:
    """``${file:...}`` references that could not be read (the value then counts as unset)."""
    return [
        ConfigIssue(located.line_of(path), dotted(path), f"secret file: {message}")
        for path, message in located.file_errors.items()
    ]


def _secret_issues(located: Located) -> list[ConfigIssue]:
    """Checked on the ``auth`` section alone, so it shows even when other sections are wrong."""
    try:
        auth = AuthSettings.model_validate(located.data.get("auth", {}))
    except ValidationError:
        return []  # the full validation reports it
    unreadable = any(path[:2] == ("auth", "secrets") for path in located.file_errors)
    if auth.secrets or auth.allow_unsigned or unreadable:
        return []
    message = (
        "no webhook secret configured; set one, or set auth.allow_unsigned: true "
        "to accept unsigned webhooks" + _unset_hint(("auth", "secrets"), located)
    )
    return [ConfigIssue(located.line_of(("auth", "secrets")), "auth.secrets", message)]


def _names(section: object) -> list[str]:
    return [name for name in section if isinstance(name, str)] if isinstance(section, dict) else []


def _reference_issues(located: Located) -> list[ConfigIssue]:
    """Names that routes and channels refer to, checked on the raw data so these errors are
    reported together with schema errors (``relay check`` shows every error at once)."""
    data = located.data
    channels, templates = _names(data.get("channels")), _names(data.get("templates"))
    issues: list[ConfigIssue] = []

    def issue(
        path: tuple[str | int, ...], message: str, line_path: tuple[str | int, ...] = ()
    ) -> None:
        issues.append(ConfigIssue(located.line_of(line_path or path), dotted(path), message))

    def unknown_template(path: tuple[str | int, ...], name: object) -> None:
        if isinstance(name, str) and name not in templates:
            issue(path, f"unknown template '{name}'{suggest(name, templates)}")

    for name, channel in (data.get("channels") or {}).items() if channels else ():
        if isinstance(name, str) and "#" in name:
            issue(
                ("channels", name),
                f"channel name '{name}' cannot contain '#' "
                "(it numbers an Apprise channel's URLs: NAME#1, NAME#2)",
            )
        if isinstance(channel, dict):
            unknown_template(("channels", name, "template"), channel.get("template"))
    routes = data.get("routes")
    route_names: set[str] = set()
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, dict):
            continue
        name = route.get("name")
        if isinstance(name, str):
            if name in route_names:
                issue(("routes", index, "name"), f"duplicate route name '{name}'")
            route_names.add(name)
        targets = route.get("to")
        listed = isinstance(targets, list)
        for position, target in enumerate(targets if isinstance(targets, list) else [targets]):
            if isinstance(target, str) and target not in channels:
                issue(
                    ("routes", index, "to"),
                    f"unknown channel '{target}'{suggest(target, channels)}",
                    ("routes", index, "to", position) if listed else (),
                )
        unknown_template(("routes", index, "template"), route.get("template"))
        if isinstance(route, dict) and route.get("actions"):
            issues += [
                ConfigIssue(located.line_of(("routes", index, "actions")), dotted(path), message)
                for path, message in _action_problems(data, index)
            ]
    return issues


def _action_problems(
    data: Mapping[str, Any], index: int
) -> list[tuple[tuple[str | int, ...], str]]:
    """What a route offering buttons lacks: somewhere for presses to arrive, and the API key."""
    where: tuple[str | int, ...] = ("routes", index, "actions")
    actions, mosaic = data.get("actions"), data.get("mosaic")
    problems = []
    if not isinstance(actions, dict) or not (actions.get("slack") or actions.get("telegram")):
        problems.append(
            (where, "buttons need actions.slack or actions.telegram (where presses arrive)")
        )
    if not isinstance(mosaic, dict) or not mosaic.get("api_key"):
        problems.append((where, "buttons need mosaic.api_key (the presses call Mosaic's API)"))
    return problems


def _match_issues(located: Located) -> list[ConfigIssue]:
    issues = []
    for path, message in match_value_problems(located.data, located.unset_vars):
        where = path[:-1] if isinstance(path[-1], int) else path
        issues.append(ConfigIssue(located.line_of(path), dotted(where), message))
    return issues


def _template_issues(located: Located) -> list[ConfigIssue]:
    """Compile every template now, so a syntax error fails the load with its line; each one
    that is valid on its own, so these show even when other sections are wrong."""
    issues = []
    templates, channels = located.data.get("templates"), located.data.get("channels")
    for name, raw in templates.items() if isinstance(templates, dict) else ():
        try:
            Renderer({name: TemplateSettings.model_validate(raw)}, {})
        except ValidationError:
            continue  # the full validation reports it
        except TemplateConfigError as exc:
            issues.append(_template_issue(located, ("templates", name), exc))
    for name, channel in channels.items() if isinstance(channels, dict) else ():
        kind = REGISTRY.get(str(channel.get("type"))) if isinstance(channel, dict) else None
        for key in kind.settings.template_fields if kind else ():
            source = channel.get(key)
            if isinstance(source, str):
                try:
                    check_syntax(source, name=name, key=key, markup="plain")
                except TemplateConfigError as exc:
                    issues.append(_template_issue(located, ("channels", name, key), exc))
    return issues


def _template_issue(
    located: Located, base: tuple[str | int, ...], exc: TemplateConfigError
) -> ConfigIssue:
    path: tuple[str | int, ...] = base
    for part in re.findall(r"[^.\[\]]+", exc.key) if base[0] == "templates" else ():
        path = (*path, int(part) if part.isdigit() else part)
    line = located.line_of(path)
    if line is not None and exc.lineno and exc.lineno > 1:
        line += exc.lineno - 1  # a block scalar starts on the next line; close enough to find
    where = f" (line {exc.lineno} of the template)" if exc.lineno else ""
    return ConfigIssue(line, dotted(path), f"template error{where}: {exc.message}")

"""The renderer: (event, template, channel kind, limits) -> ``Message``. Channels only transport.

The kind (``relay.render.kinds``) decides the markup. Per kind, the first that exists wins: the
template's own part (``slack``, ``telegram``, ``email.*``, ``webhook``), then its portable
``text``, then the channel's own template (a webhook's ``body``, an email's ``subject``) where
the kind uses one, then the built-in default. The kind applies the destination's limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from types import TracebackType
from typing import Any

from jinja2 import Template

from relay.channels.base import Limits, Message
from relay.digest.entries import DIGEST_FLAG, Digest
from relay.events import Event
from relay.render.context import ContextCache, delivery_context
from relay.render.digest import digest_context
from relay.render.environment import Environments, compile_source
from relay.render.errors import RenderError, TemplateConfigError
from relay.render.kinds import REGISTRY, Draft, Parts, RenderKind, Reply, kind_named, markups_of
from relay.render.kinds.base import COMMON_BUILTINS, DIGEST_BUILTINS, Builtin, CompiledTemplate
from relay.render.limits import measure, oneline
from relay.render.markup import PLAIN, OutputMarkup
from relay.render.settings import TemplateSettings

__all__ = ["Renderer", "check_syntax", "compile_template", "render_reply"]


def _template_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: Exception, template: str | None, kind: str) -> str:
    where = f"template '{template}'" if template else "built-in template"
    line = _template_line(exc.__traceback__)
    if line:
        where += f" line {line}"
    detail = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return f"{where} ({kind}): {oneline(detail)[:300]}"


def compile_template(
    name: str, settings: TemplateSettings, envs: Environments, kinds: Iterable[RenderKind]
) -> CompiledTemplate:
    """Compile every part; a syntax error raises ``TemplateConfigError`` (part and line)."""
    kinds = tuple(kinds)

    def compile_part(markup: str, source: str, key: str) -> Template:
        return envs.compile(markup, source, name=name, key=key)

    text: dict[str, Template] | None = None
    if settings.text is not None:
        source = settings.text
        markups = dict.fromkeys(kind.text_markup.name for kind in kinds)
        text = {markup: compile_part(markup, source, "text") for markup in markups}
    subject = None
    if settings.email is not None and settings.email.subject is not None:
        subject = compile_part(PLAIN.name, settings.email.subject, "email.subject")
    parts = {kind.name: kind.compile(settings, compile_part) for kind in kinds}
    return CompiledTemplate(
        name=name,
        text=text,
        subject=subject,
        parts={kind: part for kind, part in parts.items() if part is not None},
    )


class Renderer:
    """Compiles every template at construction (``TemplateConfigError`` on a syntax error).

    ``agents`` (agent id -> display name, from relay.yaml) is copied; ``api_names`` (agents'
    names in Mosaic, ``relay.mosaic.names``) is read at each render, so names it learns show as
    they come, and must answer from memory; ``agents`` wins. ``run_url`` is ``mosaic.run_url``. ``kinds`` defaults to the registered ones
    (``relay.render.kinds.REGISTRY``), as they are now.
    """

    def __init__(
        self,
        templates: Mapping[str, TemplateSettings],
        agents: Mapping[str, str],
        kinds: Mapping[str, RenderKind] | None = None,
        *,
        api_names: Mapping[str, str] | None = None,
        run_url: str | None = None,
    ) -> None:
        self._kinds = dict(REGISTRY if kinds is None else kinds)
        self._envs = Environments(markups_of(self._kinds.values()))
        common = self._compile_builtins(COMMON_BUILTINS)
        self._builtins = {
            name: {**common, **self._compile_builtins(kind.builtins)}
            for name, kind in self._kinds.items()
        }
        self._digest_builtins = {
            name: self._compile_builtins(
                {
                    **DIGEST_BUILTINS,
                    "text": replace(DIGEST_BUILTINS["text"], markup=kind.text_markup.name),
                    **kind.digest_builtins,
                }
            )
            for name, kind in self._kinds.items()
        }
        self._agents = dict(agents)
        self._api_names = api_names
        self._run_url = run_url
        self._contexts = ContextCache(self._agents, run_url=run_url, api_names=api_names)
        self._templates = {
            name: compile_template(name, settings, self._envs, self._kinds.values())
            for name, settings in templates.items()
        }
        self._channel_templates: dict[str, Template] = {}

    def _compile_builtins(self, builtins: Mapping[str, Builtin]) -> dict[str, Template]:
        return {
            key: self._envs.compile(b.markup, b.source, name="(built-in)", key=b.label)
            for key, b in builtins.items()
        }

    def render(
        self,
        kind: str,
        template: str | None,
        event: Event,
        *,
        event_id: str,
        route: str,
        channel: str,
        limits: Limits,
        run_started_at: float | None,
        now: float,
        channel_templates: Mapping[str, str] | None = None,
    ) -> Message:
        """The message for one delivery; ``RenderError`` when the template cannot render it.

        ``channel_templates`` are the channel's own template sources by name (a webhook's
        ``body``, an email's ``subject``); a named template's parts win over them.
        """
        renderer = kind_named(kind, self._kinds)
        compiled = self._compiled(template)
        ctx = delivery_context(
            self._contexts.get(event),
            event_id=event_id,
            route=route,
            channel=channel,
            run_started_at=run_started_at,
            now=now,
        )
        draft = self._draft(kind, ctx, limits, compiled, self._builtins[kind], channel_templates)
        with _errors_named(template, kind):
            parts = renderer.render(draft)
        return _message(
            parts,
            ctx,
            event_id=event_id,
            route=route,
            run_id=event.run_id,
            flag=event.flag,
            status=event.status,
            agent_id=event.agent_id,
        )

    def render_digest(
        self,
        kind: str,
        template: str | None,
        digest: Digest,
        *,
        event_id: str,
        channel: str,
        limits: Limits,
        max_runs: int,
        channel_templates: Mapping[str, str] | None = None,
    ) -> Message:
        """The one message of a flushed window (``relay.render.digest`` lists its variables).

        With the built-in templates, as many runs as fit the destination are listed (at most
        ``max_runs``), and the rest counted ("… and 37 more"); a template of the user's gets
        ``max_runs`` and is cut to the limits like any message."""
        renderer = kind_named(kind, self._kinds)
        compiled = self._compiled(template)
        listed = max_runs
        while True:
            ctx = digest_context(
                digest,
                agents=self._agents,
                api_names=self._api_names,
                run_url=self._run_url,
                listed=listed,
                event_id=event_id,
                channel=channel,
            )
            builtins = self._digest_builtins[kind]
            draft = self._draft(kind, ctx, limits, compiled, builtins, channel_templates)
            with _errors_named(template, kind):
                if compiled is None and listed > 0:
                    size = measure(draft.builtin(renderer.digest_key))
                    if size > limits.text:
                        listed = min(listed - 1, listed * limits.text // size)
                        continue
                parts = renderer.render_digest(draft)
            return _message(parts, ctx, event_id=event_id, route=digest.route, flag=DIGEST_FLAG)

    def _compiled(self, template: str | None) -> CompiledTemplate | None:
        if template is None:
            return None
        compiled = self._templates.get(template)
        if compiled is None:
            raise RenderError(f"unknown template '{template}'")
        return compiled

    def _draft(
        self,
        kind: str,
        ctx: dict[str, Any],
        limits: Limits,
        compiled: CompiledTemplate | None,
        builtins: Mapping[str, Template],
        channel_templates: Mapping[str, str] | None,
    ) -> Draft:
        sources = channel_templates or {}
        return Draft(
            ctx,
            limits,
            compiled,
            compiled.parts.get(kind) if compiled is not None else None,
            builtins,
            lambda key: self._channel_template(sources.get(key)),
        )

    def _channel_template(self, source: str | None) -> Template | None:
        if source is None:
            return None
        template = self._channel_templates.get(source)
        if template is None:
            try:
                template = self._envs.compile(PLAIN.name, source, name="(channel body)", key="body")
            except TemplateConfigError as exc:
                raise RenderError(str(exc)) from None
            self._channel_templates[source] = template
        return template


@contextmanager
def _errors_named(template: str | None, kind: str) -> Iterator[None]:
    """Any failure of a template as a ``RenderError`` naming the template and its line."""
    try:
        yield
    except RenderError:
        raise
    except Exception as exc:
        raise RenderError(_describe(exc, template, kind)) from None


def _message(
    parts: Parts,
    ctx: Mapping[str, Any],
    *,
    event_id: str,
    route: str,
    flag: str,
    run_id: str = "",
    status: str = "",
    agent_id: str = "",
) -> Message:
    """The rendered ``parts`` as a message, with the delivery's ids."""
    return Message(
        text=parts.text,
        subject=parts.subject,
        html=parts.html,
        blocks=parts.blocks,
        caption=parts.caption,
        body=parts.body,
        image_url=ctx["image_url"],
        extra={"color": ctx["color"], "status_word": ctx["status_word"]},
        event_id=event_id,
        route=route,
        flag=flag,
        run_id=run_id,
        status=status,
        agent_id=agent_id,
    )


def render_reply(kind: str, reply: Reply, base: Message, limits: Limits) -> Message:
    """A reply under a live card in the markup of ``kind``, within ``limits``; ``base`` is the
    card's message (its subject and ids)."""
    parts = kind_named(kind).render_reply(reply, limits)
    return Message(
        text=parts.text,
        subject=base.subject,
        html=parts.html,
        run_id=base.run_id,
        event_id=base.event_id,
        route=base.route,
        flag=base.flag,
        status=base.status,
        agent_id=base.agent_id,
    )


@cache
def _checkers(markups: tuple[OutputMarkup, ...]) -> Environments:
    return Environments(markups)


def check_syntax(source: str, *, name: str, key: str, markup: str = "plain") -> None:
    """Compile ``source`` only to report a syntax error early (e.g. a channel's ``body``)."""
    envs = _checkers(tuple(markups_of(REGISTRY.values())))
    compile_source(envs.by_markup[markup], source, name=name, key=key)

"""The commented starter ``relay.yaml`` that ``relay init`` writes."""

from __future__ import annotations

import json

__all__ = ["starter_config"]

_HEAD = """\
# Mosaic Relay: `relay check` validates this file, `relay serve` runs it.
# Every key is described in the README; `relay schema` prints the JSON Schema.

server:
  host: 127.0.0.1            # keep it on loopback behind a TLS reverse proxy
  port: 8080
  path: /webhooks/mosaic     # point Mosaic's callback_url here

auth:
  # Mosaic sends this value in X-Mosaic-Signature: set the same secret on both sides.
  secrets: ["${MOSAIC_WEBHOOK_SECRET}"]

store:
  url: sqlite:///relay.db    # next to this file; every accepted webhook is stored here first

channels:
  console: {type: console}   # a readable block per message on stdout
"""

_SLACK = """\
  team-slack:
    type: slack
    webhook_url: {url}
"""

_TELEGRAM = """\
  team-telegram:
    type: telegram
    token: ${{TELEGRAM_BOT_TOKEN}}   # from @BotFather; never written into this file
    chat_id: {chat}
"""

_ROUTES = """\

routes:                      # in order; every matching route delivers
  - name: finished-runs      # completed, failed, partially complete or cancelled
    match: {{flag: RUN_FINISHED}}
    to: [{channels}]
  # - name: failed-only
  #   match: {{flag: RUN_FINISHED, status: [failed, partial_complete]}}
  #   to: [console]
  - name: endpoint-tests     # "Test" in Mosaic's webhook settings lands here
    match: {{flag: TEST}}
    to: [{channels}]
"""


def starter_config(*, slack_webhook: str | None = None, telegram_chat: str | None = None) -> str:
    """The starter file; values given are written as YAML scalars, never as markup."""
    text = _HEAD
    channels = ["console"]
    if slack_webhook:
        text += _SLACK.format(url=json.dumps(slack_webhook))
        channels.append("team-slack")
    if telegram_chat:
        text += _TELEGRAM.format(chat=json.dumps(telegram_chat))
        channels.append("team-telegram")
    return text + _ROUTES.format(channels=", ".join(channels))

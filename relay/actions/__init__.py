"""Chat actions: Resume, Cancel and Re-run buttons on run messages, pressed in Slack or Telegram.

A message of a route with ``actions:`` carries buttons; each button holds a short random id
(``Button.value``) of a stored, expiring, single-use grant (``Grant``: which action, run and
route). A press arrives on ``/actions/slack`` (signed by Slack) or ``/actions/telegram`` (with
the bot's secret token); ``Actions.press`` checks the presser against ``actions.allow``, claims
the grant once in the store (double clicks, Slack's retries and other replicas get "already
done"), answers at once, then calls Mosaic's API, records the outcome (``ActionRecord``) and tells
the chat (``PressSurface``). See docs/actions.md.
"""

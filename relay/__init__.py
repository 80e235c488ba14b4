"""Mosaic Relay: Mosaic run webhooks to Slack, Telegram, email and more."""

__version__ = "0.1.0"

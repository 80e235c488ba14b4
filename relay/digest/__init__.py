"""Digests and quiet hours: deliveries held in the store and sent later as one message.

A digest route (``mode: digest``) holds what it matches per channel until its schedule fires; a
channel's ``quiet_hours`` hold what would reach it during the quiet period until the period ends.
Either way the held events wait in the store (``Store.take_held``), and ``Flusher`` turns each
window into one event of flag ``DIGEST`` with one delivery job, exactly once across restarts and
replicas.
"""

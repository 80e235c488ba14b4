"""One delivery try as explicit stages.

``attempt`` (``relay.delivery.attempt``) paces, decodes, renders and sends, and returns an
outcome value (``relay.delivery.outcomes``); ``record`` (``relay.delivery.record``) is the one
place that writes an outcome to the store, the metrics and the log. The dispatcher
(``relay.dispatch``) claims jobs and runs the two in turn.
"""

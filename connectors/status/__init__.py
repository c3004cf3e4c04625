"""Task status from the utilities: a callback intake for those that call out, a poller for those that cannot.

Both write Avro ``TaskStatus`` records (reporter ``callback`` or ``poll``) keyed by task id to the task-status
topic, where the SLA ledger clocks them.
"""

from connectors.settings import StatusCallbackSettings, StatusPollSettings
from connectors.status.callback import StatusCallbackHandler
from connectors.status.poller import StatusPoller
from connectors.status.wiring import build_callback_intake, build_poller

__all__ = [
    "StatusCallbackHandler",
    "StatusCallbackSettings",
    "StatusPollSettings",
    "StatusPoller",
    "build_callback_intake",
    "build_poller",
]

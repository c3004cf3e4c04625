"""Realistic stand-ins for ubridge's outside parties, with fault injection.

They know only the published HTTP contracts and import nothing from ``connectors`` or ``routing``:

- `simulators.approval`: the 工改系统 data interface (paged project events, seeded ground truth).
- `simulators.utility`: a utility's business system (idempotent task intake, counters).

Each runs in-process (``start()`` returns the base URL) or standalone (``python -m simulators.approval``).
"""

"""The 12345 government-hotline connector: work orders (工单) and return visits (回访) in, COMPLAINT tasks out.

The whole story, in flow order:

- :mod:`routing.hotline`: the platform's JSON (its field names, service words 供水/燃气/暖气…, the 限期反馈
  deadline) → ``HotlineWorkOrder`` / ``ReturnVisit``, and a work order → a COMPLAINT task; pure, unit-tested.
- :mod:`connectors.hotline.push`: the signed push intake (``POST /v1/hotline/work-orders`` and
  ``/v1/hotline/return-visits``, stage ``hotline-push``), the 爱山东 gateway's signing, charsets and answers.
- :mod:`connectors.hotline.pull_source`: the pull source over the platform's two feeds (stage ``hotline-pull``),
  one cursor for both, committed with the records; bad entries to its dead-letter topic.
- Both write ``ubridge.hotline.work-orders.v1`` and ``ubridge.hotline.return-visits.v1`` (keyed by order id).
- :mod:`connectors.hotline.router`: work orders → a COMPLAINT task on the serving utility's task topic (stage
  ``hotline-router``); the existing sinks deliver it like any task. Unserved orders are dead-lettered.
- :mod:`connectors.hotline.settings` and ``hotline:`` in :class:`connectors.settings.Settings`; the stages are
  listed in :mod:`connectors.registry`.
- :mod:`simulators.hotline`: the platform (feeds, the answer endpoint 反馈 the complaint loop calls, return
  visits on demand); :mod:`connectors.demo.hotline` replays orders for ``make demo``.
"""

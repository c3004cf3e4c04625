"""Run the ``ubridge`` command with its wall clock moved to another instant (it keeps ticking).

``python -m tests.e2e.fake_clock 2027-01-05T10:00:00+08:00 demo --exit …``. time-machine moves ``time.time``
and ``datetime.now`` of this process only: monotonic clocks, timeouts and the Kafka broker keep real time.
(libfaketime 0.9.10 cannot do this for Python 3.11: its timed waits hang or fail with EINVAL.)
"""

import sys
from datetime import datetime

import time_machine

from connectors.cli import main

if __name__ == "__main__":
    instant = datetime.fromisoformat(sys.argv[1])
    with time_machine.travel(instant, tick=True):
        sys.exit(main(sys.argv[2:]))

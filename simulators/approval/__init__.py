"""Simulated 工改系统 (engineering-construction approval system) data interface.

Example:
    >>> from simulators.approval import ApprovalSimulator
    >>> simulator = ApprovalSimulator(token="T")
    >>> _ = simulator.generate(100, invalid_rate=0.05, unserved_rate=0.1)
    >>> url = simulator.start()
    >>> simulator.stop()
"""

from simulators.approval.generator import EventGenerator
from simulators.approval.server import ApprovalSimulator

__all__ = ["ApprovalSimulator", "EventGenerator"]

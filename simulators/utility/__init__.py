"""Simulated utility business systems (water, gas, heat companies) receiving ubridge's tasks.

Example:
    >>> from simulators.utility import UtilitySimulator
    >>> simulator = UtilitySimulator("yantai-water", token="T")
    >>> url = simulator.start()
    >>> simulator.stop()
"""

from simulators.utility.server import ReceivedTask, SimStats, UtilitySimulator

__all__ = ["ReceivedTask", "SimStats", "UtilitySimulator"]

"""Throughput and latency harnesses: ``make bench`` prints ``bench <name> <value> <unit>`` lines."""

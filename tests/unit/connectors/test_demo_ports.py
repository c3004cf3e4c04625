"""The demo's listener ports: distinct, free, and out of the kernel's way."""

from pathlib import Path

from connectors.demo.ports import free_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_the_demo_never_hands_out_a_port_twice() -> None:
    """The kernel may offer a closed probe's port again; the demo's picker does not repeat one."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_demo_port_lies_below_the_range_outgoing_connections_take_their_ports_from() -> None:
    """A client's connection can never take a listener's port between its choice and its bind."""
    assert all(10000 <= free_port() < _ephemeral_low() for _ in range(100))

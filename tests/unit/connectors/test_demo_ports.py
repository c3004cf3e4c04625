"""The demo's listeners: every port it hands out in one process is distinct."""

from connectors.demo.runner import free_port


def test_the_demo_never_hands_out_a_port_twice() -> None:
    """The kernel may offer a closed probe's port again; the demo's picker does not repeat one."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)

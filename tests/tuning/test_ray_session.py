"""check_cluster: a cluster that a run would join is checked before anything
starts, over real sockets on loopback (no Ray is started here)."""

import os
import socket
import time

import pytest

from pipelines.errors import UsageError
from pipelines.tuning.ray_session import check_cluster


def _closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_address_where_nothing_listens_fails_at_once(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(UsageError) as err:
        check_cluster(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 2  # refused, not retried
    assert str(err.value) == (f"no Ray cluster at 127.0.0.1:{port} (Connection refused); "
                              f"start one with `ray start --head` or drop --address")


def test_an_address_that_accepts_connections_passes(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_cluster(f"127.0.0.1:{server.getsockname()[1]}")


def test_ray_address_from_the_environment_is_checked_too(monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(UsageError, match=r"\(Connection refused\); start one with `ray start "
                                         r"--head` or unset RAY_ADDRESS$"):
        check_cluster(None)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with pytest.raises(UsageError, match="^RAY_ADDRESS ray://head:10001: Ray Client"):
        check_cluster(None)


@pytest.mark.parametrize("address", ["head", "head:port", ":6379"])
def test_an_address_without_host_and_port_says_what_to_give(monkeypatch, address):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(UsageError, match=f"^--address {address!r}: give the head node's "
                                         f"host:port"):
        check_cluster(address)


@pytest.mark.parametrize("address", [None, "auto", "local"])
def test_no_address_auto_and_local_are_not_probed(monkeypatch, address):
    # None and "local": an embedded Ray; "auto": ray.init finds the cluster or says so
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"probed {args}")

    monkeypatch.setattr(socket, "create_connection", no_probe)
    check_cluster(address)


def test_loopback_node_makes_the_node_ip_loopback_and_restores_it(monkeypatch):
    # the IP Ray gives a node it starts, inside and after the block (no node started:
    # tests/tuning/test_loopback.py runs a real sweep and reads its sockets)
    from ray._private import services

    from pipelines.tuning.ray_session import LOOPBACK_ENV, loopback_node

    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    before = services.get_node_ip_address()
    with loopback_node():
        assert services.get_node_ip_address() == "127.0.0.1"
        assert os.environ[LOOPBACK_ENV] == "0"  # for the GCS, raylet and agents it starts
    assert services.get_node_ip_address() == before and LOOPBACK_ENV not in os.environ
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    with loopback_node():
        pass
    assert os.environ[LOOPBACK_ENV] == "1"

"""The TCP ports a process tree listens on, read from /proc: the LISTEN rows of
/proc/net/tcp and /proc/net/tcp6, matched by socket inode to the file descriptors
of each process in the tree (the process and everything it spawned, found by
parent pid, as `ss -ltnp` would show them); and this machine's own addresses, to
try each port from outside loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

TCP_LISTEN = "0A"  # the state column's value for LISTEN (include/net/tcp_states.h)


@dataclass(frozen=True, order=True)
class Listener:
    """One listening socket: its address and port, and the process holding it."""

    port: int
    address: str  # as the kernel has it: "0.0.0.0", "::", "127.0.0.1", "::ffff:7f00:1"
    pid: int
    command: str  # the process's command line

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The address, an IPv4-mapped IPv6 one (::ffff:127.0.0.1) as the IPv4 it maps."""
        address = ipaddress.ip_address(self.address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            return address.ipv4_mapped
        return address

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect (127.0.0.0/8, ::1, or IPv4-mapped
        127.x.x.x); a wildcard address (0.0.0.0, ::) accepts every interface."""
        return self.ip.is_loopback

    @property
    def host(self) -> str:
        """Where a client on this machine connects to it: its own address, 127.0.0.1
        for a wildcard."""
        return "127.0.0.1" if self.ip.is_unspecified else str(self.ip)

    @property
    def program(self) -> str:
        """What runs: the script of a Python process (`python -u x/monitor.py ...`:
        "monitor.py"), else the executable's name, or a Ray worker's title (ray::IDLE)."""
        words = self.command.split()
        scripts = [w for w in words[1:4] if w.endswith(".py")]
        return Path(scripts[0] if scripts else words[0] if words else "?").name

    def __str__(self) -> str:
        shown = self.command if len(self.command) <= 80 else self.command[:77] + "..."
        return (f"{self.program} (pid {self.pid}: {shown}) listens on {self.address} "
                f"port {self.port}")


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants alive now, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # it exited meanwhile
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def listening_inodes() -> dict[int, tuple[str, int]]:
    """Socket inode -> (address, port) of every TCP socket in LISTEN on this machine
    (in this network namespace)."""
    found = {}
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] != TCP_LISTEN:
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.IPv4Address(raw) if family == 4 else ipaddress.IPv6Address(raw)
            found[int(fields[9])] = (str(address), int(hex_port, 16))
    return found


def listeners(root: int) -> set[Listener]:
    """Every TCP socket in LISTEN held by `root` or a descendant of it."""
    inodes, found = listening_inodes(), set()
    for pid in process_tree(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # exited, or not ours to read
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                address, port = inodes[int(target[8:-1])]
                found.add(Listener(port, address, pid, command.strip()))
    return found


def machine_addresses() -> list[str]:
    """This machine's own IPv4 addresses other than loopback: the "/32 host LOCAL"
    entries of the kernel's routing trie (/proc/net/fib_trie), as `ip addr` lists them."""
    found, previous = set(), ""
    for line in Path("/proc/net/fib_trie").read_text().splitlines():
        if "/32 host LOCAL" in line and previous.strip().startswith("|--"):
            address = previous.strip().removeprefix("|--").strip()
            if not ipaddress.IPv4Address(address).is_loopback:
                found.add(address)
        previous = line
    return sorted(found)


def accepts(address: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether a TCP connection to address:port is accepted."""
    try:
        socket.create_connection((address, port), timeout=timeout_s).close()
    except OSError:  # refused, unreachable, timed out
        return False
    return True

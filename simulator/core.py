"""The simulator's root object: one instance holds all state, shared by the identity and Graph sides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.clock import Clock
from simulator.counters import Counters
from simulator.directory import Directory
from simulator.tokens import TokenRegistry


class DropConnection(Exception):
    """Raised by a handler to make the server abort the TCP connection without an HTTP answer
    (fault injection: connection reset, or "timeout after commit")."""


@dataclass
class Simulator:
    clock: Clock = field(default_factory=Clock)
    counters: Counters = field(default_factory=Counters)
    directory: Directory = field(default_factory=Directory)
    tokens: TokenRegistry = field(init=False)
    # The CA bundle change notifications (and their validation requests) verify the receiver's TLS certificate
    # against; None: the system's trust store, as Graph trusts public CAs. start_simulator sets the local CA.
    notification_ca: Path | None = None
    # State holders of the identity and Graph sides, attached by their modules when the server is built.
    identity: Any = None
    graph: Any = None

    def __post_init__(self) -> None:
        self.tokens = TokenRegistry(self.clock)

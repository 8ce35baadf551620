"""A server that is already running somewhere on loopback (or wherever the user points us)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Endpoint, Target


@dataclass
class AddressTarget(Target):
    host: str = "127.0.0.1"
    port: int = 25

    def start(self) -> Endpoint:
        return Endpoint(self.host, self.port, implicit_tls=self.params.tls == "implicit",
                        server_hostname=self.host)

    def details(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port}

"""A local certificate authority for the stack's HTTPS endpoints, generated at start with `trustme`.

Clients are told the CA's path (setting OUTBOUND_CA_BUNDLE); nothing is added to the machine's trust store.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class LocalTls:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        return ctx


def create_local_tls(directory: Path) -> LocalTls:
    """Write a fresh CA and one server certificate for localhost/127.0.0.1 into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Outlook sync local stack")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
    tls = LocalTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca_path))
    leaf.cert_chain_pems[0].write_to_path(str(tls.cert_path))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(tls.cert_path), append=True)
    leaf.private_key_pem.write_to_path(str(tls.key_path))
    tls.key_path.chmod(0o600)
    return tls

"""Requests to URLs a caller chose (today: the webhook URL), made so they cannot reach inside the network.

A caller-set URL is a server-side request forgery vector: without care, `https://169.254.169.254/...` or a name
that resolves to 10.0.0.5 makes this app call the instance metadata service or a private service for the caller.
So for every such URL this module:

- allows https only (http only to loopback, and only with the local-stack setting WEBHOOK_ALLOW_LOOPBACK on);
- resolves the host once and refuses when ANY address is loopback, private, link-local (169.254/16 and with it
  169.254.169.254), CGNAT (100.64/10), 0/8, Azure's platform address 168.63.129.16, multicast, reserved or
  otherwise not globally routable, IPv6 forms included (fc00::/7, fe80::/10, and IPv4 addresses embedded in
  IPv4-mapped, 6to4 and NAT64 addresses);
- connects to the very address it checked (no second lookup, so DNS rebinding cannot swap it), with TLS SNI and
  certificate hostname verification on the URL's name, no redirects, no proxies from the environment;
- reports failures as coarse reasons (`REASONS`), never an address, port or exception text, so the alert a caller
  reads is not a port scanner.

The check runs when the URL is saved (a clear 400) and again on every request (DNS may have changed since).
Requests go through one urllib3 connection each, not a pool: the pool logs every request line (with the query,
which may carry the receiver's token) at DEBUG; a filter keeps queries out of urllib3.connection's records too.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from requests.certs import where as default_ca_bundle
from requests.utils import requote_uri
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.util.ssl_match_hostname import CertificateError

from shared import validation
from shared.errors import ValidationFailed
from shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]  # (host, port) -> IP address strings

# The coarse reasons an outbound request can fail with (what alerts and stored outcomes show).
BLOCKED_ADDRESS = "blocked_address"
DNS_FAILURE = "dns_failure"
TIMEOUT = "timeout"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_ERROR = "connection_error"
TLS_ERROR = "tls_error"
REASONS = (BLOCKED_ADDRESS, DNS_FAILURE, TIMEOUT, CONNECTION_REFUSED, CONNECTION_ERROR, TLS_ERROR,
           "http_1xx", "http_3xx", "http_4xx", "http_5xx")

# Not all of these are covered by `is_global`/`is_private` (CGNAT is, 168.63.129.16 and multicast are not);
# listed anyway so the rule reads as the issue states it.
_BLOCKED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "168.63.129.16/32", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "fc00::/7", "fe80::/10", "ff00::/8", "::/128", "::1/128"))
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the operating system's resolver gives for `host`, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def blocked(address: IPAddress, *, allow_loopback: bool = False) -> bool:
    """Whether a request may not go to `address`: anything not globally routable (loopback only by setting)."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return blocked(embedded, allow_loopback=allow_loopback)
    if allow_loopback and address.is_loopback:
        return False
    return (not address.is_global or address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or any(address in network for network in _BLOCKED_NETWORKS if network.version == address.version))


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (::ffff:a.b.c.d, 2002:aabb:ccdd::/48, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class Refused(Exception):
    """An outbound request that may not or could not be made; `reason` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`addresses`, all allowed) and what to say to the server."""

    scheme: str
    host: str  # the name for SNI, certificate verification and the Host header (ASCII)
    port: int
    request_target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    """What the server answered: the status, or None and the reason there was no answer."""

    status: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Outbound:
    """Checks and sends requests to caller-chosen URLs. `resolver` is the DNS edge (tests pass their own)."""

    def __init__(self, *, allow_loopback: bool = False, verify: str | bool = True,
                 resolver: Resolver = system_resolver, user_agent: str = "outlook-calendar-sync") -> None:
        self.allow_loopback = allow_loopback
        self._ca_certs = verify if isinstance(verify, str) else default_ca_bundle()  # what requests trusts by default
        self._resolver = resolver
        self._user_agent = user_agent

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = system_resolver,
                      user_agent: str = "outlook-calendar-sync") -> Outbound:
        return cls(allow_loopback=settings.webhook_allow_loopback, verify=settings.tls_verify, resolver=resolver,
                   user_agent=user_agent)

    def check(self, url: str, name: str) -> str:
        """The save-time check: the URL, or ValidationFailed naming the field and the coarse problem."""
        url = validation.https_url(url, name, allow_http=self.allow_loopback)
        try:
            self.resolve(url)
        except Refused as exc:
            problem = {
                DNS_FAILURE: "its host name does not resolve",
                "http_scheme": "must use https (http is allowed only to loopback on the local stack)",
            }.get(exc.reason, "must not point at a loopback, private, link-local or other internal address")
            raise ValidationFailed(name, problem) from None
        return url

    def resolve(self, url: str) -> Target:
        """Resolve the URL's host once and check every address; raises Refused."""
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise Refused(DNS_FAILURE) from None
        raw_host = (parts.hostname or "").rstrip(".")
        if parts.scheme not in ("https", "http") or not raw_host:
            raise Refused("http_scheme")
        try:
            host = raw_host.encode("idna").decode("ascii")
        except UnicodeError:
            raise Refused(DNS_FAILURE) from None
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            candidates = [str(literal)]  # a literal address is its own answer: no resolver involved
        else:
            try:
                candidates = list(self._resolver(host, port))
            except (OSError, UnicodeError):
                raise Refused(DNS_FAILURE) from None
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in candidates]
        except ValueError:
            raise Refused(DNS_FAILURE) from None
        if not addresses:
            raise Refused(DNS_FAILURE)
        if any(blocked(a, allow_loopback=self.allow_loopback) for a in addresses):
            raise Refused(BLOCKED_ADDRESS)
        if parts.scheme == "http" and not (self.allow_loopback and all(_loopback(a) for a in addresses)):
            raise Refused("http_scheme")
        target = requote_uri((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return Target(parts.scheme, host, port, target, tuple(str(a) for a in addresses))

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Answer:
        """POST to the URL's checked addresses (the next one only when a connection cannot be made). Never follows
        a redirect: a 3xx is an answer like any other."""
        try:
            target = self.resolve(url)
        except Refused as exc:
            return Answer(None, BLOCKED_ADDRESS if exc.reason == "http_scheme" else exc.reason)
        all_headers = {**headers, "Host": target.host_header, "User-Agent": self._user_agent}
        reason = CONNECTION_ERROR
        for address in target.addresses:
            connection = self._connection(target, address, timeout)
            try:
                connection.request("POST", target.request_target, body=body, headers=all_headers)
                status = connection.getresponse().status
                return Answer(status, f"http_{status // 100}xx")
            except Exception as exc:  # noqa: BLE001 - mapped to a coarse reason; the text can name the address
                reason = _reason(exc)
                if reason not in (CONNECTION_REFUSED, CONNECTION_ERROR) or connection.sock is not None:
                    break  # only a connection that was never made is tried at the next address
            finally:
                connection.close()
        return Answer(None, reason)

    def _connection(self, target: Target, address: str, timeout: float) -> HTTPConnection:
        if target.scheme == "http":
            return HTTPConnection(address, target.port, timeout=timeout)
        return HTTPSConnection(address, target.port, timeout=timeout, cert_reqs="CERT_REQUIRED",
                               ca_certs=self._ca_certs, server_hostname=target.host, assert_hostname=target.host)


def _loopback(address: IPAddress) -> bool:
    embedded = _embedded_ipv4(address)
    return (embedded or address).is_loopback


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError, CertificateError, Urllib3SSLError)):
        return TLS_ERROR
    if isinstance(exc, NameResolutionError):
        return DNS_FAILURE
    if isinstance(exc, NewConnectionError) and not isinstance(exc.__cause__, TimeoutError):
        # urllib3 makes NewConnectionError a ConnectTimeoutError subclass, whatever the cause
        return CONNECTION_REFUSED if isinstance(exc.__cause__, ConnectionRefusedError) else CONNECTION_ERROR
    if isinstance(exc, (ConnectTimeoutError, TimeoutError)):
        return TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    return CONNECTION_ERROR  # reset, malformed answer (http.client.HTTPException), ...


def redact(url: str) -> str:
    """The URL without its query (which may carry a token): `scheme://host[:port]/path?<redacted>`."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return f"{base}?{REDACTED}" if parts.query else base


REDACTED = "<redacted>"
_QUERY = re.compile(r"\?[^\s\"'<>]*")


class QueryRedactingFilter(logging.Filter):
    """Replaces any URL query in a record's message with ?<redacted> (urllib3.connection names the URL when a
    response's headers fail to parse)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = _QUERY.sub(f"?{REDACTED}", message), None
        return True


_FILTER = QueryRedactingFilter()
if not any(isinstance(f, QueryRedactingFilter) for f in logging.getLogger("urllib3.connection").filters):
    logging.getLogger("urllib3.connection").addFilter(_FILTER)

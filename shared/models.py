"""The rows the app keeps in Table Storage, one dataclass per table, with how each is keyed.

Partitioning follows the access paths: almost everything is read within one system (institution), so the
system ID is the partition key; pending OAuth flows are looked up by their state alone; the token-refresh due
index is one narrow partition read by time range.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.storage.tables import Row

ACCOUNT_TYPES = ("organizations", "common", "consumers", "single_tenant")
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"  # Microsoft's tenant of personal accounts
KINDS = ("user", "space")
TITLE_MODES = ("patron_name", "patron_name_email", "public_nickname")

# Connection states
CONNECTED = "connected"
REAUTH_REQUIRED = "reauthorization_required"
ACCESS_DENIED = "access_denied"  # app mode: Graph refuses the room (outside the Exchange scope); no sign-in helps
DISABLED = "disabled"

# Connection modes: how Graph is reached for a connection.
DELEGATED = "delegated"  # a person's sign-in (tokens in the connection's encrypted MSAL cache)
APP = "app"  # the app's own client-credentials token, limited by an Exchange RBAC scope (rooms only)
MODES = (DELEGATED, APP)


def subject_key(kind: str, subject_id: str) -> str:
    return f"{kind}:{subject_id}"


@dataclass(kw_only=True)
class SystemRecord(Row):
    """A system the operator created and its active keys: `[{"key_id", "sha256", "created_at"}]` (never a key)."""

    system: str
    keys: list[dict[str, str]] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return "system"


@dataclass(kw_only=True)
class Integration(Row):
    """A system's app registration and switches. The client secret itself is in Key Vault, never here."""

    system: str
    client_id: str
    account_type: str
    tenant_id: str | None = None
    enabled: bool = True
    allowed_origins: list[str] = field(default_factory=list)
    secret_name: str = ""
    secret_version: str = ""
    secret_hint: str = ""  # first characters only, so an admin can tell which secret is in use
    secret_expires_on: datetime | None = None
    webhook_url: str | None = None  # without its query (which may hold a token): ?<redacted> when it has one
    webhook_url_version: str = ""  # the Key Vault version of the full URL, when it has a query
    webhook_secret_version: str = ""  # the signing secret itself is in Key Vault
    credentials_ok: bool = True
    credentials_error: str | None = None  # AADSTS code of the last failed check
    credentials_checked_at: datetime | None = None
    # App-only access (client credentials) for room connections in app mode, in one directory.
    app_access_enabled: bool = False
    app_tenant_id: str | None = None
    app_access_warning: str | None = None  # e.g. a tenant-wide calendar permission seen in the app token
    room_discovery_delegated: bool = False  # space sign-ins also ask for Place.Read.All (admin consent)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return "integration"

    @property
    def app_tenant(self) -> str | None:
        """The directory app-only tokens are requested from, when app access is on."""
        return self.app_tenant_id if self.app_access_enabled and self.app_tenant_id else None


@dataclass(kw_only=True)
class LocationSettings(Row):
    system: str
    location: str
    title_mode: str = "patron_name"
    populate_creator: bool = False
    populate_creator_since: datetime | None = None  # the seed: only events synced after it was switched on
    updated_at: datetime | None = None

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return self.location


@dataclass(kw_only=True)
class Connection(Row):
    """One authorized Microsoft account for a user or a space, and what it syncs to."""

    system: str
    kind: str
    subject_id: str
    mode: str = DELEGATED  # rows from before app mode existed read as delegated
    status: str = CONNECTED
    # The signed-in account, from the ID token (empty in app mode: nobody signs in).
    account_oid: str = ""
    account_tenant: str = ""
    account_username: str = ""
    account_name: str = ""
    home_account_id: str = ""
    # Where and what it syncs.
    sync_resource: str = ""  # mailbox address; empty means the signed-in account
    sync_calendar_id: str | None = None
    freebusy_calendar_id: str | None = None  # users
    location: str | None = None  # spaces
    two_way: bool = False  # spaces
    # Health.
    last_error_code: str | None = None
    last_error_message: str | None = None
    last_error_at: datetime | None = None
    authorized_at: datetime | None = None
    token_refreshed_at: datetime | None = None
    updated_at: datetime | None = None

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return subject_key(self.kind, self.subject_id)

    @property
    def mailbox(self) -> str:
        return self.sync_resource or self.account_username

    @property
    def is_app(self) -> bool:
        return self.mode == APP

    @property
    def syncable(self) -> bool:
        """Whether sync may try this connection now: connected, or an app-mode room Graph refused (the fix is
        made in Exchange, not by a sign-in, so the next attempt is the check that clears it)."""
        return self.status == CONNECTED or (self.mode == APP and self.status == ACCESS_DENIED)


@dataclass(kw_only=True)
class TokenCache(Row):
    """The MSAL token cache of one connection, sealed with the data key. Kept apart from the connection row so
    token rotation and settings changes do not fight over one ETag."""

    system: str
    kind: str
    subject_id: str
    sealed: str
    key_version: str = ""
    written_at: datetime | None = None
    due_at: datetime | None = None  # when the keep-alive refresh is due (this connection's RefreshDue entry)

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return subject_key(self.kind, self.subject_id)

    def context(self) -> str:
        """Associated data: the sealed cache opens only in this row."""
        return f"tokencache|{self.system}|{self.row_key()}"

    @property
    def due_key(self) -> str:
        return due_row_key(self.due_at, self.system, self.kind, self.subject_id) if self.due_at else ""


def state_key(state: str) -> str:
    """Pending flows are stored under a hash of their state: a leaked table row is no usable state."""
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(kw_only=True)
class PendingFlow(Row):
    state_hash: str
    system: str
    kind: str
    subject_id: str
    return_url: str
    sealed_flow: str  # the MSAL auth code flow (PKCE verifier, nonce), sealed
    client_id: str
    expires_at: datetime
    created_at: datetime
    expected_account: str | None = None  # lower case; the only account this flow may connect
    replace_account: bool = False  # may connect an account other than the one already connected

    def partition_key(self) -> str:
        return self.state_hash

    def row_key(self) -> str:
        return "flow"


@dataclass(kw_only=True)
class RefreshDue(Row):
    """Index of when each connection's refresh token should next be exercised; the sweep reads only rows whose
    time has come (a range query on the row key), so its cost grows with what is due, not with all connections."""

    due_at: datetime
    system: str
    kind: str
    subject_id: str

    def partition_key(self) -> str:
        return "due"

    def row_key(self) -> str:
        return due_row_key(self.due_at, self.system, self.kind, self.subject_id)


def due_row_key(due_at: datetime, system: str, kind: str, subject_id: str) -> str:
    return f"{due_at.strftime('%Y%m%dT%H%M%S')}|{system}|{kind}|{subject_id}"


@dataclass(kw_only=True)
class Alert(Row):
    """Something an admin must act on. One row per (type, subject): raising again while open counts up."""

    system: str
    alert_type: str
    subject: str  # e.g. "user:42", "space:7", "integration"
    message: str
    microsoft_code: str | None = None
    raised_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    occurrences: int = 1

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return f"{self.alert_type}|{self.subject}"

    @property
    def open(self) -> bool:
        return self.resolved_at is None


def connection_partition(system: str, kind: str, subject_id: str) -> str:
    return f"{system}|{kind}|{subject_id}"


@dataclass(kw_only=True)
class Item(Row):
    """A booking (space) or shift (user) as the host last sent it: what its events must say."""

    system: str
    kind: str
    subject_id: str
    item_id: str
    title: str = ""
    patron_first_name: str = ""
    patron_last_name: str = ""
    patron_email: str = ""
    public_nickname: str = ""
    nicknames_enabled: bool = True
    location: str | None = None  # the host's location ID (title mode), spaces only
    location_text: str = ""
    notes: str = ""
    occurrences: list[dict[str, Any]] = field(default_factory=list)  # [{key, start, end, time_zone, all_day?}]
    updated_at: datetime | None = None

    def partition_key(self) -> str:
        return connection_partition(self.system, self.kind, self.subject_id)

    def row_key(self) -> str:
        return self.item_id


# Sync record states
SYNCED = "synced"
PENDING = "pending"  # not yet confirmed in Outlook (in flight, or waiting in the retry table)
FAILED = "failed"  # Microsoft refused it for good, or retries ran out


@dataclass(kw_only=True)
class SyncRecord(Row):
    """One occurrence's Outlook event: its sync ID and what was last written to it."""

    system: str
    kind: str
    subject_id: str
    item_id: str
    occurrence_key: str
    event_id: str | None = None  # the sync ID
    generation: int = 0  # bumped when the event must be created anew (deleted in Outlook)
    content_hash: str = ""
    state: str = PENDING
    start_utc: datetime | None = None
    end_utc: datetime | None = None
    subject: str = ""  # as written: the pull side tells our own writes (echoes) from changes made in Outlook
    transaction_id: str = ""  # of the create in flight: the pull side knows our event before its ID is recorded
    attempts: int = 0
    last_error_code: str | None = None
    last_error_message: str | None = None
    synced_at: datetime | None = None
    # A create in flight: who sends it and until when (written with the row's ETag before the create is sent), so
    # a concurrent push of the same occurrence elsewhere defers instead of sending a second create.
    claim_owner: str | None = None
    claim_until: datetime | None = None

    def partition_key(self) -> str:
        return connection_partition(self.system, self.kind, self.subject_id)

    def row_key(self) -> str:
        return f"{self.item_id}|{self.occurrence_key}"


@dataclass(kw_only=True)
class RetryEntry(Row):
    """An occurrence whose last write failed for a reason that may pass; the retry timer drains these."""

    system: str
    kind: str
    subject_id: str
    item_id: str
    occurrence_key: str
    next_attempt_at: datetime
    attempts: int = 1
    last_error_code: str | None = None

    def partition_key(self) -> str:
        return "retry"

    def row_key(self) -> str:
        return f"{connection_partition(self.system, self.kind, self.subject_id)}|{self.item_id}|{self.occurrence_key}"


@dataclass(kw_only=True)
class ExportJob(Row):
    system: str
    kind: str
    subject_id: str
    job_id: str
    mode: str
    total: int
    chunks: int
    state: str = "queued"
    created_at: datetime
    completed_at: datetime | None = None

    def partition_key(self) -> str:
        return connection_partition(self.system, self.kind, self.subject_id)

    def row_key(self) -> str:
        return self.job_id


@dataclass(kw_only=True)
class ExportChunk(Row):
    """One queue message's worth of a job. Progress is kept per chunk, so workers never contend on one row."""

    job_id: str
    index: int
    item_ids: list[str] = field(default_factory=list)
    occurrences: int = 0
    done: int = 0
    failed: int = 0
    retrying: int = 0  # handed to the retry table (Graph kept failing for now)
    failures: list[dict[str, str]] = field(default_factory=list)
    state: str = "pending"
    updated_at: datetime | None = None

    def partition_key(self) -> str:
        return self.job_id

    def row_key(self) -> str:
        return f"{self.index:06d}"



@dataclass(kw_only=True)
class PullTarget(Row):
    """Index of spaces with two-way sync, so the pull timer reads only those, across all systems."""

    system: str
    subject_id: str

    def partition_key(self) -> str:
        return "pull"

    def row_key(self) -> str:
        return f"{self.system}|{self.subject_id}"


# A room's two-way sync state lives in one table partition (the room's), so a pull commits its feed entries,
# the external events they describe and the room's state in one transaction.


@dataclass(kw_only=True)
class PullState(Row):
    """Where a room's delta sync stands and the feed's last sequence number. Its ETag is what keeps two pulls of
    one room from both publishing: each commits only on the state as it read it."""

    system: str
    subject_id: str
    delta_link: str | None = None
    calendar_key: str = ""  # mailbox and calendar the delta link belongs to
    window_start: datetime | None = None
    window_end: datetime | None = None
    seq: int = 0
    last_pull_at: datetime | None = None
    baselined_at: datetime | None = None

    def partition_key(self) -> str:
        return connection_partition(self.system, "space", self.subject_id)

    def row_key(self) -> str:
        return "state"


@dataclass(kw_only=True)
class ExternalEvent(Row):
    """A booking made in Outlook on a synced room calendar, as last seen."""

    system: str
    subject_id: str
    event_id: str
    subject: str = ""
    start_utc: datetime
    end_utc: datetime
    is_all_day: bool = False
    time_zone: str = ""  # IANA key of the event's own zone (originalStartTimeZone), "" when Graph's is unknown
    zone_assumed: bool = False  # an all-day event's dates placed in UTC for want of a known zone
    organizer_name: str = ""
    organizer_email: str = ""
    series_master_id: str | None = None
    fingerprint: str = ""
    conflict: bool = False
    creator_populated: bool = False
    first_seen_at: datetime | None = None

    def partition_key(self) -> str:
        return connection_partition(self.system, "space", self.subject_id)

    def row_key(self) -> str:
        return f"ext|{self.event_id}"


@dataclass(kw_only=True)
class OwnObservation(Row):
    """The last change made in Outlook to one of the product's own events that was reported, so a replayed
    delta item is not reported twice."""

    system: str
    subject_id: str
    event_id: str
    digest: str

    def partition_key(self) -> str:
        return connection_partition(self.system, "space", self.subject_id)

    def row_key(self) -> str:
        return f"own|{self.event_id}"


@dataclass(kw_only=True)
class FeedEntry:
    """One published change of a room, in order: the cursor of the external-events feed is `seq`. Stored in
    `FeedPage`s, many to a row."""

    system: str
    subject_id: str
    seq: int
    change: str  # created, updated, removed, own_event_changed, own_event_deleted
    event_id: str
    data: dict[str, Any] = field(default_factory=dict)
    published_at: datetime | None = None


@dataclass(kw_only=True)
class FeedPage(Row):
    """Consecutive feed entries of a room written by one transaction, as one row: a room's first pull publishes
    every booking in its calendar, and a row per entry doubled the rows that pull writes. Keyed by its last
    sequence number, so the pages after a cursor are the rows whose key sorts after it."""

    system: str
    subject_id: str
    first_seq: int
    last_seq: int
    entries: list[Any] = field(default_factory=list)  # [seq, change, event_id, data] each
    published_at: datetime | None = None

    def partition_key(self) -> str:
        return connection_partition(self.system, "space", self.subject_id)

    def row_key(self) -> str:
        return f"feed|{self.last_seq:012d}"

    def unpack(self) -> list[FeedEntry]:
        return [FeedEntry(system=self.system, subject_id=self.subject_id, seq=int(seq), change=str(change),
                          event_id=str(event_id), data=dict(data), published_at=self.published_at)
                for seq, change, event_id, data in self.entries]


# Change notifications (shared/subscriptions.py, shared/notifications.py)
SUBSCRIPTION_ACTIVE = "active"
SUBSCRIPTION_FAILED = "failed"  # creating or renewing it failed; the maintenance timer tries again


@dataclass(kw_only=True)
class PushSubscription(Row):
    """A connection's Microsoft Graph change-notification subscription (at most one per connection), as managed:
    which resource, until when, and how the last attempt went. The secret clientState is not here (see
    SubscriptionLookup: only its hash is kept)."""

    system: str
    kind: str
    subject_id: str
    resource: str = ""  # e.g. /users/room-101@contoso.com/events, or /me/events
    subscription_id: str = ""
    status: str = SUBSCRIPTION_ACTIVE
    expires_at: datetime | None = None
    created_at: datetime | None = None
    renewed_at: datetime | None = None
    failures: int = 0  # consecutive failed attempts (backoff of the maintenance timer)
    last_error_code: str | None = None
    last_error_at: datetime | None = None

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return subject_key(self.kind, self.subject_id)

    def live(self, now: datetime) -> bool:
        return self.status == SUBSCRIPTION_ACTIVE and bool(self.subscription_id) and \
            self.expires_at is not None and self.expires_at > now


@dataclass(kw_only=True)
class SubscriptionLookup(Row):
    """What an incoming notification needs, keyed by Graph's subscription ID: whose it is, the SHA-256 of its
    clientState (compared in constant time), and until when a pull of its room is already queued (coalescing)."""

    subscription_id: str
    system: str
    kind: str
    subject_id: str
    client_state_sha256: str
    pull_due_at: datetime | None = None

    def partition_key(self) -> str:
        return self.subscription_id

    def row_key(self) -> str:
        return "lookup"


@dataclass(kw_only=True)
class SweepMark(Row):
    """When the pull timer last swept: rooms with a live subscription are swept when their own slot of the
    PUSH_SWEEP_MINUTES cycle passed since then (one row, not one write per room)."""

    swept_at: datetime

    def partition_key(self) -> str:
        return "sweep"

    def row_key(self) -> str:
        return "mark"

"""The domain's one exception hierarchy.

Each error carries a stable machine-readable `code`, the HTTP status it maps to, and a message that is safe to
show a caller (never a secret, token or stack trace). `shared.http` maps them to responses in one place.
Microsoft's own error code (an AADSTS number or a Graph error code) travels in `microsoft_code` when there is one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(
        self, message: str, *, microsoft_code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.microsoft_code = microsoft_code
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.microsoft_code:
            error["microsoft_code"] = self.microsoft_code
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(DomainError):
    code = "bad_request"
    status = 400


class InvalidJson(BadRequest):
    code = "invalid_json"


class ValidationFailed(BadRequest):
    """A field is missing, of the wrong type, or out of range; `details.field` names it."""

    code = "validation_failed"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", details={"field": field})
        self.field = field


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class MethodNotAllowed(DomainError):
    code = "method_not_allowed"
    status = 405


class Conflict(DomainError):
    code = "conflict"
    status = 409


class ConcurrencyConflict(Conflict):
    """Someone else changed the row since it was read (ETag mismatch); reread and retry."""

    code = "concurrency_conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    status = 415


class DependencyUnavailable(DomainError):
    """A service we depend on (storage, Key Vault, Microsoft) cannot be reached right now."""

    code = "dependency_unavailable"
    status = 503


class ConfigurationError(DomainError):
    """The deployment's settings are wrong; an operator, not the caller, must fix them."""

    code = "configuration_error"
    status = 500


class SecretNotFound(NotFound):
    code = "secret_not_found"


class DecryptionFailed(DomainError):
    """Ciphertext could not be opened: wrong or missing key version, or tampered data."""

    code = "decryption_failed"
    status = 500

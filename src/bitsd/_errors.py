"""The one exception tree of bitsd.

::

    Exception
     └── BitsError                      .hresult, .message   (any BITS failure)
          ├── InvalidStateError         BG_E_INVALID_STATE: the verb is not allowed in this state
          ├── NotFoundError             BG_E_NOT_FOUND (also a LookupError)
          ├── EmptyJobError             BG_E_EMPTY: Resume of a job with no files
          ├── ErrorInfoUnavailableError BG_E_ERROR_INFORMATION_UNAVAILABLE
          ├── InvalidArgumentError      E_INVALIDARG and other caller mistakes (also a ValueError)
          ├── NotSupportedError         E_NOTIMPL: a feature bitsd does not have (yet)
          ├── ReadOnlyPropertyError     BG_E_READ_ONLY_PROPERTY_AFTER_RESUME and kin
          ├── StoreError                the persistent store is unusable (corrupt, newer schema)
          └── TransferError             a failure of a transfer, recorded on the job, never raised
                                        to callers: carries context, transient, retry_after

Rules:
- Caller errors are raised at once and leave the job unchanged.
- Transfer errors are produced only by the transport boundary (``bitsd._transfer.classify``);
  the engine records them on the job (TRANSIENT_ERROR or ERROR) and does not re-raise them.
- A message never carries the user name or password of a URL (``http://user:pass@host/``):
  :class:`BitsError` removes the userinfo of every URL in its message, so no error
  description, log line or API answer built from one can show them.
- The checks of a caller's arguments quote a value with :func:`shown`, which can show any
  value (at most 100 characters; an int too long to write in decimal by its size), so a
  refusal is never lost to an error while its message is written.
"""

from __future__ import annotations

import re

from bitsd import codes
from bitsd._enums import ErrorContext

__all__ = [
    "BitsError",
    "EmptyJobError",
    "ErrorInfoUnavailableError",
    "InvalidArgumentError",
    "InvalidStateError",
    "NotFoundError",
    "NotSupportedError",
    "ReadOnlyPropertyError",
    "StoreError",
    "TransferError",
    "shown",
    "without_userinfo",
]


class BitsError(Exception):
    """A failure with a BITS HRESULT.

    Args:
        hresult: the BITS code (unsigned 32-bit form).
        message: a sentence for people; defaults to the code's description.
    """

    default_hresult: int = codes.E_FAIL

    def __init__(self, message: str | None = None, *, hresult: int | None = None) -> None:
        self.hresult: int = codes.to_unsigned(self.default_hresult if hresult is None else hresult)
        text = message if message is not None else codes.describe(self.hresult)
        self.message: str = without_userinfo(text)
        super().__init__(self.message)

    @property
    def name(self) -> str:
        """The BITS name of :attr:`hresult`, e.g. ``BG_E_NOT_FOUND``."""
        return codes.name_of(self.hresult)

    def __str__(self) -> str:
        return f"{self.name} (0x{self.hresult:08X}): {self.message}"


# The userinfo of a URL inside a text: after "scheme://", everything up to the last "@" before
# the end of the authority (the first "/", "?", "#", quote or white space); a password may
# hold an "@" of its own.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s'\"<>]*@")


# Characters of a caller's value a message quotes at most.
_SHOWN_LENGTH = 100


def shown(value: object) -> str:
    """``repr(value)`` for a message about a caller's value, at most 100 characters. An int
    too long to write in decimal (Python refuses over 4,300 digits: ValueError) is shown by
    its size, so a message about it can be made at all."""
    try:
        text = repr(value)
    except ValueError:
        if isinstance(value, int):
            return f"an integer of {value.bit_length()} bits"
        return f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN_LENGTH else f"{text[: _SHOWN_LENGTH - 3]}..."


def without_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed."""
    return _USERINFO.sub(r"\1", text)


class InvalidStateError(BitsError):
    """The verb is not allowed in the job's current state (BG_E_INVALID_STATE)."""

    default_hresult = codes.BG_E_INVALID_STATE


class NotFoundError(BitsError, LookupError):
    """No job with that id (BG_E_NOT_FOUND)."""

    default_hresult = codes.BG_E_NOT_FOUND


class EmptyJobError(BitsError):
    """Resume of a job that has no files (BG_E_EMPTY)."""

    default_hresult = codes.BG_E_EMPTY


class ErrorInfoUnavailableError(BitsError):
    """``get_error()`` outside ERROR and TRANSIENT_ERROR (BG_E_ERROR_INFORMATION_UNAVAILABLE)."""

    default_hresult = codes.BG_E_ERROR_INFORMATION_UNAVAILABLE


class InvalidArgumentError(BitsError, ValueError):
    """A bad argument: malformed URL, relative path, unknown flag (E_INVALIDARG by default)."""

    default_hresult = codes.E_INVALIDARG


class NotSupportedError(BitsError, NotImplementedError):
    """A feature bitsd does not implement, or not for this job type (E_NOTIMPL)."""

    default_hresult = codes.E_NOTIMPL


class ReadOnlyPropertyError(BitsError):
    """A property that can no longer change (BG_E_READ_ONLY_PROPERTY_AFTER_RESUME by default)."""

    default_hresult = codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME


class StoreError(BitsError):
    """The persistent store cannot be used (BG_E_DATABASE_CORRUPT by default)."""

    default_hresult = codes.BG_E_DATABASE_CORRUPT


class TransferError(BitsError):
    """A classified transfer failure, recorded on the job.

    Args:
        hresult: the BITS code.
        context: where it happened.
        transient: True if the service retries it after the retry delay.
        message: the description recorded in ``ErrorInfo.description``.
        retry_after: seconds the server asked us to wait (Retry-After), if any.
        protocol: "http", "https" or "file" when the error is tied to a protocol.
    """

    def __init__(
        self,
        hresult: int,
        context: ErrorContext,
        *,
        transient: bool,
        message: str | None = None,
        retry_after: float | None = None,
        protocol: str | None = None,
    ) -> None:
        super().__init__(message, hresult=hresult)
        self.context = context
        self.transient = transient
        self.retry_after = retry_after
        self.protocol = protocol

    def __repr__(self) -> str:
        kind = "transient" if self.transient else "fatal"
        return f"TransferError({self.name}, {self.context}, {kind}, {self.message!r})"

"""Text a job keeps: every string a caller gives the engine to keep is UTF-8 text.

Rules:
- A Python ``str`` may hold lone surrogates: ``"\\ud800"``, or ``"\\udcff"``, which is how
  ``os.fsdecode`` shows a byte of a file name that is not UTF-8. The store (sqlite) and the
  control API (JSON) carry UTF-8 only, and HTTP credentials are sent as UTF-8: such text would
  pass every other check and then fail inside the store (UnicodeEncodeError) or inside a
  transfer. It is refused where it is given, with E_INVALIDARG, before anything changes.
- Checking costs one ``isascii`` for ASCII text (almost every name), one encode otherwise.
"""

from __future__ import annotations

from bitsd._errors import InvalidArgumentError

__all__ = ["check_text", "is_utf8"]


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (it holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(what: str, value: object, *, secret: bool = False) -> str:
    """``value`` if it is a ``str`` of UTF-8 text. The error quotes the text unless it is
    ``secret`` (a password, custom headers that may carry credentials: an error message goes
    to the caller, the daemon's answers and logs).

    Raises:
        InvalidArgumentError: not a ``str``, or a lone surrogate in it (E_INVALIDARG).
    """
    if not isinstance(value, str):
        raise InvalidArgumentError(f"the {what} must be a string, not {type(value).__name__}")
    if not is_utf8(value):
        quoted = "" if secret else f": {value!r}"
        raise InvalidArgumentError(
            f"the {what} is not UTF-8 text (it holds a lone surrogate){quoted}"
        )
    return value

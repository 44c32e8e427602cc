"""The head of an HTTP/1.1 request, written by bitsd's own clients (the raw download client and
the synchronous client's channel to the daemon).

Rules:
- The head is the request line and the fields given, in order, each line ended by CRLF, then
  an empty line; latin-1 bytes.
- A CR, LF or NUL anywhere but the line ends, or a space in the method or the target, is refused
  before anything is written (a header or request-line injection).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["request_head"]


def request_head(method: str, target: str, fields: Sequence[tuple[str, str]]) -> bytes:
    """The bytes of the head of ``method target`` with ``fields``.

    Raises:
        ValueError: a CR, LF or NUL in the method, target or a field, or a space in the method
            or target.
    """
    line = f"{method} {target}"
    text = f"{line} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"
    breaks = len(fields) + 2
    if (
        text.count("\r") != breaks
        or text.count("\n") != breaks
        or "\0" in text
        or line.count(" ") != 1
    ):
        raise ValueError(
            f"a CR, LF or NUL in the request, or a space in its request line: {line!r}"
        )
    return text.encode("latin-1")

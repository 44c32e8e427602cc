"""File ranges (AddFileWithRanges, RequestFileRanges): validation and how a local offset maps
to a remote one.

Rules (bits-inventory §5.5):
- At least one range; an offset of LENGTH_TO_EOF is BG_E_INVALID_RANGE; a length of 0 is
  E_INVALIDARG; more than MaxRangesPerFile (500 by default, the engine's
  ``max_ranges_per_file``) is BG_E_TOO_MANY_RANGES_IN_FILE.
- Ranges are compared sorted by offset: duplicates and overlaps are BG_E_OVERLAPPING_RANGES
  (so the same offset twice fails whatever the lengths).
- The local file is the ranges' bytes concatenated in the order given (100-199, 900-999,
  400-499 make a 300-byte file). A length of LENGTH_TO_EOF runs to the end of the remote file.
- RequestFileRanges (an on-demand file, bits-inventory §5.6): ranges may overlap each other and
  earlier ones (they are merged); a negative offset, a length of 0 or less, an offset of
  LENGTH_TO_EOF, or a range that ends beyond the file (once its size is known) is
  BG_E_INVALID_RANGE. LENGTH_TO_EOF runs to the end of the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import BitsError, InvalidArgumentError, TransferError, shown

__all__ = [
    "MAX_RANGES_PER_FILE",
    "Ranges",
    "check_ranges",
    "check_requested",
    "local_size",
    "locate",
    "range_pairs",
    "resolve",
]

# BITS group-policy default MaxRangesPerFile.
MAX_RANGES_PER_FILE = 500

Ranges = tuple[tuple[int, int], ...]


def _exact_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(value)


def range_pairs(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """``ranges`` as a tuple of (int, int), at least one: their type, checked alone (what the
    values say is for :func:`check_ranges` and :func:`check_requested`).

    Raises:
        InvalidArgumentError: not an iterable of pairs of integers (a bool is none), or empty.
    """
    try:
        checked = tuple((_exact_int(o), _exact_int(n)) for o, n in iter(ranges))
    except (TypeError, ValueError):
        raise InvalidArgumentError("ranges must be (offset, length) pairs of integers") from None
    if not checked:
        raise InvalidArgumentError("at least one range is needed")
    return checked


def check_ranges(ranges: Iterable[tuple[int, int]], *, limit: int = MAX_RANGES_PER_FILE) -> Ranges:
    """Validate AddFileWithRanges' ranges and return them as a tuple, in the given order.

    Args:
        limit: MaxRangesPerFile (the engine's ``max_ranges_per_file``); 0 means no limit.
    """
    checked = range_pairs(ranges)
    if limit and len(checked) > limit:
        raise BitsError(
            f"{len(checked)} ranges; at most {limit} (max_ranges_per_file)",
            hresult=codes.BG_E_TOO_MANY_RANGES_IN_FILE,
        )
    for offset, length in checked:
        if offset == codes.LENGTH_TO_EOF:
            raise BitsError(
                "a range cannot start at LENGTH_TO_EOF", hresult=codes.BG_E_INVALID_RANGE
            )
        if (
            offset < 0
            or length <= 0
            or offset > codes.LENGTH_TO_EOF
            or length > codes.LENGTH_TO_EOF
        ):
            raise InvalidArgumentError(f"invalid range ({shown(offset)}, {shown(length)})")
    ordered = sorted(checked)
    for (a, n), (b, _) in itertools.pairwise(ordered):
        if n == codes.LENGTH_TO_EOF or a + n > b:
            raise BitsError(f"ranges at {a} and {b} overlap", hresult=codes.BG_E_OVERLAPPING_RANGES)
    return checked


def check_requested(ranges: Iterable[tuple[int, int]], size: int | None) -> Ranges:
    """Validate RequestFileRanges' ranges for a file of ``size`` bytes (None: not known yet).

    Returns:
        The ranges, in the given order, as spans of ``bitsd._intervals``: a LENGTH_TO_EOF
        range ends at the end of the file, or at ``_intervals.EOF_END`` while the size is not
        known.
    """
    checked = range_pairs(ranges)
    out = []
    for offset, length in checked:
        to_eof = length == codes.LENGTH_TO_EOF
        end = (size if size is not None else codes.LENGTH_TO_EOF) if to_eof else offset + length
        if (
            offset < 0
            or length <= 0
            or offset >= codes.LENGTH_TO_EOF
            or (not to_eof and end >= codes.LENGTH_TO_EOF)
            or (size is not None and (offset >= size or end > size))
        ):
            text = f"({shown(offset)}, {'EOF' if to_eof else shown(length)})"
            why = (
                f"is outside the remote file of {size} bytes"
                if size is not None and offset >= 0 and length > 0
                else "is not a range: offsets are 0 or more, lengths 1 or more"
            )
            raise BitsError(f"the range {text} {why}", hresult=codes.BG_E_INVALID_RANGE)
        out.append((offset, end - offset))
    return tuple(out)


def resolve(ranges: Ranges, remote_size: int) -> Ranges:
    """The ranges with LENGTH_TO_EOF replaced by the remote size.

    Raises:
        TransferError: BG_E_INVALID_RANGE (fatal, REMOTE_FILE) when a range starts or ends
            beyond the remote file: a run-time error of the job, as in BITS.
    """
    out = []
    for offset, length in ranges:
        if length == codes.LENGTH_TO_EOF:
            length = remote_size - offset
        if offset >= remote_size or offset + length > remote_size or length <= 0:
            raise TransferError(
                codes.BG_E_INVALID_RANGE,
                ErrorContext.REMOTE_FILE,
                transient=False,
                message=f"the range ({offset}, {length}) is outside the remote file of "
                f"{remote_size} bytes",
            )
        out.append((offset, length))
    return tuple(out)


def local_size(ranges: Ranges) -> int | None:
    """The local file's size, or None while a LENGTH_TO_EOF range is unresolved."""
    if any(n == codes.LENGTH_TO_EOF for _, n in ranges):
        return None
    return sum(n for _, n in ranges)


def locate(ranges: Ranges, local_offset: int) -> tuple[int, int]:
    """(range index, offset inside that range) of a position in the local file; a position at
    the very end gives (len(ranges), 0)."""
    for i, (_, n) in enumerate(ranges):
        if local_offset < n:
            return i, local_offset
        local_offset -= n
    return len(ranges), 0

"""``bulkfetch._whole``, the bulk's common answer told by comparing strings, pinned to what
``bulkfetch.taken_answer`` (``resume.decide``) and the check of the bytes written in
``Bulk._outcome`` make of the same head."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from bitsd._errors import TransferError
from bitsd._transfer.bulkfetch import Fetched, _whole, taken_answer
from bitsd._transfer.bulkfetch_child import UNSET

URL = "http://example.test/f"


def decided(written: int, length: str, content_range: str, etag: str, modified: str) -> object:
    """What the slow path of ``Bulk._outcome`` makes of a taken 206 with these head fields and
    ``written`` bytes: a Fetched, or why not (the error's code, or "short")."""
    try:
        answer = taken_answer(
            (length, content_range, etag, modified), url=URL, bytes_total=None, now_wall=0
        )
    except TransferError as err:
        return err.hresult
    if written != answer.body_end:
        return "short"
    total = answer.bytes_total if answer.bytes_total is not None else written
    return Fetched(total, answer.validator, written)


sizes = st.integers(min_value=0, max_value=2**40)


@st.composite
def heads(draw: st.DrawFn) -> tuple[int, str, str, str, str]:
    """A taken 206's written bytes and head fields: mostly the common shape, often a little
    off (another size, case, spacing or range), with every kind of validator."""
    written = draw(sizes)
    size = draw(st.one_of(st.just(written), sizes))
    length = draw(st.sampled_from([str(size), str(written), f" {written}", f"0{written}"]))
    first, last, total = draw(
        st.sampled_from([(0, size - 1, size), (0, written - 1, written), (1, written - 1, written)])
    )
    content_range = draw(
        st.sampled_from(
            [
                f"bytes {first}-{last}/{total}",
                f"Bytes {first}-{last}/{total}",
                f"bytes  {first}-{last}/{total} ",
                f"bytes {first}-{last}/*",
                UNSET,
            ]
        )
    )
    etag = draw(st.sampled_from([UNSET, "", '"abc"', 'W/"abc"', "w/x"]))
    modified = draw(st.sampled_from([UNSET, "", "Sat, 05 Dec 2026 19:00:00 GMT"]))
    return written, length, content_range, etag, modified


@given(heads())
@example((16_384, "16384", "bytes 0-16383/16384", '"abc"', UNSET))
@example((1, "1", "bytes 0-0/1", 'W/"abc"', "Sat, 05 Dec 2026 19:00:00 GMT"))
@example((0, "0", "bytes 0--1/0", UNSET, UNSET))
def test_the_whole_answer_is_what_decide_makes_of_it(head: tuple[int, str, str, str, str]) -> None:
    """Where ``_whole`` tells a head, ``decide`` makes the same Fetched of it; and it tells
    every head of the common shape (a 206 of all ``written`` bytes, one or more)."""
    written, length, content_range, etag, modified = head
    whole = _whole(written, length, content_range, etag, modified)
    if whole is not None:
        assert whole == decided(written, length, content_range, etag, modified)
    common = length == str(written) and content_range == f"bytes 0-{written - 1}/{written}"
    assert (whole is not None) == (common and written > 0)

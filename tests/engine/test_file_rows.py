"""The FileRows of ``?files=rows`` (Cancel's and Complete's compact answer) carry exactly the
File objects of ``shapes.file_to_json``: ``bitsd._wire.files_from_rows`` rebuilds them, once
encoded as the daemon encodes its answers and decoded as a client does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse

from bitsd import codes
from bitsd._engine import FileDetails
from bitsd._errors import InvalidArgumentError
from bitsd._model import FileRecord
from bitsd._wire import FILE_ROW_FIELDS, files_from_rows
from bitsd.daemon.shapes import file_rows_to_json, file_to_json
from tests.engine.conftest import EngineFactory, jobs_of_every_kind
from tests.servers.faulty import FaultServer


def over_the_wire(value: object) -> Any:
    """``value`` encoded as the daemon answers it, decoded as a client reads it."""
    return json.loads(bytes(JSONResponse(value).body))


def assert_rows_rebuild_the_objects(details: list[FileDetails]) -> None:
    """The rows of ``details``, through the wire, rebuild the objects of file_to_json."""
    rows = over_the_wire(file_rows_to_json(details))
    assert rows["fields"] == list(FILE_ROW_FIELDS)
    assert len(rows["rows"]) == len(details)
    assert files_from_rows(rows) == over_the_wire([file_to_json(d) for d in details])


async def test_rows_rebuild_the_file_objects_of_every_kind_of_job(
    server: FaultServer, make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """File by file, the rows rebuild the object form: a transferred file validated, one with
    ranges (no filled ranges), files of unknown size, an on-demand file holding a range from
    its middle, an upload's file (no filled ranges)."""
    async with make_engine() as engine:
        done, fresh, on_demand, upload = await jobs_of_every_kind(engine, server, dest, tmp_path)
        for job in (done, fresh, on_demand, upload):
            assert_rows_rebuild_the_objects(await job._file_details())
        # What the cases above cover, so that none of them goes unnoticed.
        shown = [file_to_json(d) for d in await on_demand._file_details()]
        assert [f["filled_ranges"] for f in shown] == [[[1000, 500]], []]
        assert [f["progress"]["bytes_total"] for f in shown] == [50_000, codes.SIZE_UNKNOWN]
        shown = [file_to_json(d) for d in await done._file_details()]
        assert [(f["validated"], f["ranges"]) for f in shown] == [
            (True, []),
            (False, [[0, 100], [1000, 10]]),
        ]
        assert [f["filled_ranges"] for f in shown] == [[[0, 50_000]], None]
        assert files_from_rows(over_the_wire(file_rows_to_json([]))) == []


def test_rows_rebuild_the_file_objects_of_any_record() -> None:
    """Values no job above has: names beyond ASCII, a range to the end of the file, several
    filled spans, the largest sizes."""
    big = 2**63 - 1
    records: list[FileDetails] = [
        (
            FileRecord(
                "job",
                0,
                "https://h\u00e9/\u00fc?q=1",
                "/d/\u00e9t\u00e9 \U0001f600",
                "/d/.bitsd-1.tmp",
                bytes_total=big,
                bytes_transferred=big - 1,
                ranges=((0, 1), (10, codes.LENGTH_TO_EOF)),
                validated=True,
            ),
            None,
        ),
        (
            FileRecord(
                "job", 1, "http://h/x", "/d/x", "/d/.x.tmp", bytes_transferred=30, completed=False
            ),
            [(0, 10), (20, 10), (big - 5, 5)],
        ),
        (FileRecord("job", 2, "http://h/y", "/d/y", "/d/.y.tmp", 0, 0, completed=True), []),
    ]
    assert_rows_rebuild_the_objects(records)


def test_rows_are_found_by_their_columns_names() -> None:
    """A client reads the columns by name: reordered or added columns rebuild the same files;
    a missing column or a row of another length is malformed (E_INVALIDARG)."""
    record = FileRecord("job", 0, "http://h/x", "/d/x", "/d/.x.tmp", 5, 5, completed=True)
    rows = over_the_wire(file_rows_to_json([(record, [(0, 5)])]))
    expected = files_from_rows(rows)
    order = [*reversed(rows["fields"]), "later"]
    moved = {
        "fields": order,
        "rows": [
            [dict(zip(rows["fields"], row, strict=True)).get(name, 0) for name in order]
            for row in rows["rows"]
        ],
    }
    assert files_from_rows(moved) == expected
    for bad in (
        None,
        {"fields": rows["fields"]},
        {"fields": rows["fields"][1:], "rows": [row[1:] for row in rows["rows"]]},
        {"fields": rows["fields"], "rows": [rows["rows"][0][:-1]]},
        {"fields": rows["fields"], "rows": [{"remote_name": "x"}]},
    ):
        with pytest.raises(InvalidArgumentError):
            files_from_rows(bad)

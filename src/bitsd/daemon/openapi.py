"""The OpenAPI 3.1 document of the control API, served at ``/v1/openapi.json``.

Rules:
- :data:`DOCUMENT` is the machine-readable twin of docs/control-api.md. Enum names come from the
  enums themselves and limits from the constants the daemon applies, so they cannot drift.
- ``docs/openapi.json`` is :func:`render` of it (``python -m bitsd.daemon.openapi >
  docs/openapi.json``); tests/daemon/test_openapi.py fails when the file is stale or when a
  route of the app is missing from the document (or the reverse).
- OpenAPI has no WebSocket operations: ``/v1/events`` is described as the GET that upgrades,
  with the messages of both directions as schemas.
"""

from __future__ import annotations

import json
from typing import Any

import bitsd
from bitsd import codes
from bitsd._args import NOTIFY_FLAGS_MASK
from bitsd._enums import (
    AuthScheme,
    AuthTarget,
    ErrorContext,
    JobState,
    JobType,
    Priority,
    ProxyUsage,
)
from bitsd._httpopts import (
    MAX_CUSTOM_HEADERS_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_PROXY_LIST_LENGTH,
    MAX_USER_NAME_LENGTH,
)
from bitsd._policy import MAX_BYTE_COUNT, MAX_DESCRIPTION_LENGTH, MAX_DISPLAY_NAME_LENGTH
from bitsd._ranges import MAX_RANGES_PER_FILE
from bitsd._wire import FILE_ROW_FIELDS
from bitsd.daemon.events import NOTIFY_METHODS
from bitsd.daemon.shapes import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    WAIT_TIMEOUT_DEFAULT,
    WAIT_TIMEOUT_MAX,
)

__all__ = ["DOCUMENT", "render"]

JSON = dict[str, Any]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: JSON) -> JSON:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: JSON, *, required: tuple[str, ...] | None = None) -> JSON:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


def _names(kind: type[Any], description: str) -> JSON:
    return {"type": "string", "enum": [member.name for member in kind], "description": description}


def _name_or_number(kind: type[Any], what: str) -> JSON:
    return {
        "oneOf": [
            {"type": "string", "description": f"a {what} name, any case"},
            {"type": "integer", "enum": [int(member) for member in kind]},
        ]
    }


# A priority: another number is 501 E_NOTIMPL (SetPriority's answer), another name 400.
_PRIORITY: JSON = {
    **_name_or_number(Priority, "priority"),
    "description": "a priority name (any case) or number; a number that is no priority is 501 "
    "E_NOTIMPL, as SetPriority answers it",
}


def _answer(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: JSON) -> JSON:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> JSON:
    return {str(s): {"$ref": f"#/components/responses/{_ERROR_RESPONSES[s][0]}"} for s in statuses}


_ERROR_RESPONSES = {
    400: (
        "BadRequest",
        "E_INVALIDARG or BG_E_STRING_TOO_LONG: a malformed body, field or query; or another "
        "caller error the engine raises with its BITS code (BG_E_INVALID_RANGE, "
        "BG_E_INVALID_AUTH_TARGET, ...)",
    ),
    403: ("Forbidden", "E_ACCESSDENIED: the custom headers are write-only"),
    404: ("NotFound", "BG_E_NOT_FOUND (no such job), or E_NOTIMPL for an unknown route"),
    405: ("MethodNotAllowed", "E_NOTIMPL: the route exists, the method does not"),
    409: (
        "Conflict",
        "BG_E_INVALID_STATE, BG_E_EMPTY, BG_E_ERROR_INFORMATION_UNAVAILABLE, "
        "BG_E_READ_ONLY_PROPERTY_*, E_PENDING, BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD or "
        "BG_E_UNSUPPORTED_JOB_CONFIGURATION: the job's state or other properties refuse it",
    ),
    500: ("InternalError", "E_UNEXPECTED: a bug of the daemon (logged); it keeps serving"),
    501: (
        "NotImplemented",
        "E_NOTIMPL: a feature bitsd or the job does not have (e.g. the reply of a job that is "
        "not upload-reply), or a flag or enum value BITS does not define",
    ),
}

_JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The job's id (a UUID; braces and upper case are accepted).",
    "schema": {"type": "string"},
}

_FILE_INDEX: JSON = {
    "name": "index",
    "in": "path",
    "required": True,
    "description": "The file's place in the job, 0 first",
    "schema": {"type": "integer"},
}

_SECONDS = {"type": "number", "minimum": 0, "description": "seconds"}
_UINT = {"type": "integer", "minimum": 0}
_HRESULT = {"type": "integer", "minimum": 0, "maximum": 0xFFFFFFFF, "description": "unsigned"}

_ERROR_DETAIL = _object(
    {
        "hresult": _HRESULT,
        "name": {"type": "string", "description": "e.g. BG_E_NOT_FOUND"},
        "message": {"type": "string"},
    }
)
_NOTIFY_METHODS = list(NOTIFY_METHODS)
_PATH = {"type": "string", "description": "an absolute path"}
_OPTIONAL_TEXT = _nullable({"type": "string"})
_RANGE = {
    "type": "array",
    "prefixItems": [
        {**_UINT, "description": "offset"},
        {
            **_UINT,
            "description": f"length; {codes.LENGTH_TO_EOF} (LENGTH_TO_EOF) runs to the end",
        },
    ],
    "minItems": 2,
    "maxItems": 2,
}
_SPAN = {
    "type": "array",
    "prefixItems": [{**_UINT, "description": "offset"}, {**_UINT, "description": "length"}],
    "minItems": 2,
    "maxItems": 2,
}
_FILE_FIELDS: JSON = {
    "remote_name": {"type": "string"},
    "local_name": {"type": "string"},
    "temporary_name": {"type": "string"},
    "progress": _object(
        {
            "bytes_total": {**_UINT, "description": "18446744073709551615 while unknown"},
            "bytes_transferred": _UINT,
            "completed": {"type": "boolean"},
        }
    ),
}
_LISTED_FIELDS: JSON = {
    "ranges": {
        "type": "array",
        "items": _RANGE,
        "description": "the file's ranges, in the order given; [] for a whole file",
    },
    "validated": {
        "type": "boolean",
        "description": "SetValidationState(TRUE) was called",
    },
    "filled_ranges": _nullable(
        {
            "type": "array",
            "items": _SPAN,
            "description": (
                "GetFilledFileRanges: the bytes held, merged and by offset; null for "
                "an upload job or a file added with ranges"
            ),
        }
    ),
}
# The columns of a file row, by name: a ListedFile's members and its progress's.
_ROW_COLUMNS: JSON = {
    **_FILE_FIELDS,
    **_FILE_FIELDS["progress"]["properties"],
    **_LISTED_FIELDS,
}
_HRESULT_RESULT = _object({"hresult": _HRESULT, "name": {"type": "string"}})

_SCHEMAS: JSON = {
    "Error": _object({"error": _ERROR_DETAIL}),
    "JobState": _names(JobState, "BG_JOB_STATE"),
    "JobType": _names(JobType, "BG_JOB_TYPE"),
    "Priority": _names(Priority, "BG_JOB_PRIORITY"),
    "ErrorContext": _names(ErrorContext, "BG_ERROR_CONTEXT"),
    "JobProgress": _object(
        {
            "bytes_total": {**_UINT, "description": "18446744073709551615 while unknown"},
            "bytes_transferred": _UINT,
            "files_total": _UINT,
            "files_transferred": _UINT,
        }
    ),
    "JobTimes": _object(
        {
            "creation_time": {"type": "string", "format": "date-time"},
            "modification_time": {"type": "string", "format": "date-time"},
            "transfer_completion_time": _nullable({"type": "string", "format": "date-time"}),
        }
    ),
    "File": _object(_FILE_FIELDS),
    "ListedFile": _object({**_FILE_FIELDS, **_LISTED_FIELDS}),
    "FileRows": {
        **_object(
            {
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "prefixItems": [{"const": name} for name in FILE_ROW_FIELDS],
                    "description": "the columns' names, in order: a ListedFile's members, with "
                    "its progress's bytes_total, bytes_transferred and completed in place of "
                    "progress. Read the columns by name: a later version may add columns",
                },
                "rows": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "prefixItems": [
                            {"title": name, **_ROW_COLUMNS[name]} for name in FILE_ROW_FIELDS
                        ],
                    },
                    "description": "one per file, in transfer order: its values, in the order "
                    "of fields",
                },
            }
        ),
        "description": "A job's files, the values of their ListedFile objects in one array "
        "per file (progress's members in columns of their own): for thousands of files, about "
        "half the size and faster to build and parse",
    },
    "ErrorInfo": _object(
        {
            "code": _HRESULT,
            "name": {"type": "string"},
            "context": _ref("ErrorContext"),
            "description": {"type": "string"},
            "context_description": {"type": "string"},
            "file": _nullable(_ref("File")),
            "protocol": _nullable({"type": "string", "enum": ["http", "https", "file"]}),
        }
    ),
    "NotifyCmdLine": _object(
        {
            "program": _nullable({"type": "string", "description": "an absolute path"}),
            "parameters": _nullable(
                {"type": "string", "description": "the whole command line, program name first"}
            ),
        },
        required=("program",),
    ),
    "Job": _object(
        {
            "id": {"type": "string"},
            "display_name": {"type": "string"},
            "description": {"type": "string"},
            "type": _ref("JobType"),
            "state": _ref("JobState"),
            "priority": _ref("Priority"),
            "owner": {"type": "integer", "description": "the owner's uid"},
            "notify_flags": {"type": "integer", "description": "BG_NOTIFY_* bits"},
            "notify_cmd_line": _ref("NotifyCmdLine"),
            "minimum_retry_delay": _SECONDS,
            "no_progress_timeout": _SECONDS,
            "maximum_download_time": _SECONDS,
            "dynamic_content": {"type": "boolean"},
            "on_demand": {"type": "boolean", "description": "BITS_JOB_PROPERTY_ON_DEMAND_MODE"},
            "error_count": _UINT,
            "progress": _ref("JobProgress"),
            "times": _ref("JobTimes"),
            "error": {
                "oneOf": [_ref("ErrorInfo"), {"type": "null"}],
                "description": "set in ERROR and TRANSIENT_ERROR",
            },
            "maximum_download_size": _nullable({**_UINT, "description": "bytes; null: none"}),
            "custom_headers": _nullable(
                {"type": "string", "description": "null when none or write-only"}
            ),
            "custom_headers_write_only": {"type": "boolean"},
            "http_method": _nullable({"type": "string", "description": "null: GET"}),
            "security_flags": {**_UINT, "description": "BG_SSL_* and redirect-policy bits"},
            "proxy_usage": {
                "type": "integer",
                "enum": [int(m) for m in ProxyUsage],
                "description": ", ".join(f"{int(m)} {m.name}" for m in ProxyUsage),
            },
            "proxy_list": _OPTIONAL_TEXT,
            "proxy_bypass": _OPTIONAL_TEXT,
            "ca_bundle": _nullable(_PATH),
            "client_certificate": _nullable(_PATH),
            "client_key": _nullable(
                {**_PATH, "description": "null when the key is in the certificate file"}
            ),
            "transfer_policy": {**_UINT, "description": "BITS cost-state bits"},
            "bandwidth_limit": _nullable({**_UINT, "description": "bytes per second"}),
        }
    ),
    "ProxySettings": _object(
        {
            "usage": _name_or_number(ProxyUsage, "proxy usage"),
            "list": _nullable(
                {
                    "type": "string",
                    "maxLength": MAX_PROXY_LIST_LENGTH,
                    "description": "OVERRIDE only: [scheme=][scheme://]host[:port] ...",
                }
            ),
            "bypass": _nullable(
                {
                    "type": "string",
                    "maxLength": MAX_PROXY_LIST_LENGTH,
                    "description": "OVERRIDE only: hosts, <local> and * wildcards",
                }
            ),
        },
        required=("usage",),
    ),
    "ClientCertificate": _object(
        {"certificate": _PATH, "key": _nullable(_PATH)}, required=("certificate",)
    ),
    "JobPage": _object(
        {
            "jobs": {
                "type": "array",
                "items": {"oneOf": [_ref("Job"), _ref("JobBrief")]},
                "description": "Job objects, or JobBrief objects with view=brief",
            },
            "total": {**_UINT, "description": "non-final jobs in all pages"},
            "next_offset": _nullable({**_UINT, "description": "offset of the next page"}),
        }
    ),
    "FilesAdded": _object({"added": {**_UINT, "description": "files added"}}),
    "JobBrief": _object(
        {
            "id": {"type": "string"},
            "state": _names(JobState, "the job's state"),
            "creation_time": {"type": "string", "format": "date-time"},
        }
    ),
    "NewJob": {
        **_object(
            {
                "display_name": {"type": "string", "maxLength": MAX_DISPLAY_NAME_LENGTH},
                "type": {**_name_or_number(JobType, "job type"), "default": "DOWNLOAD"},
                "files": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {"remote_name": {"type": "string"}, "local_name": {"type": "string"}},
                        required=("remote_name", "local_name"),
                    ),
                    "description": "added as AddFileSet adds them",
                },
                "priority": _PRIORITY,
                "resume": {
                    "type": "boolean",
                    "default": False,
                    "description": "Resume the job once its files are added",
                },
            },
            required=("display_name",),
        ),
        "description": "CreateJob; with files, priority or resume the same request also does "
        "AddFileSet, SetPriority and Resume, in that order, all or nothing: if one is refused "
        "the job is cancelled and the error is the answer (a bitsd extension: one request "
        "instead of up to four)",
    },
    "JobPatch": {
        **_object(
            {
                "display_name": {"type": "string", "maxLength": MAX_DISPLAY_NAME_LENGTH},
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH},
                "priority": _PRIORITY,
                "minimum_retry_delay": {**_SECONDS, "description": "seconds; under 5 become 5"},
                "no_progress_timeout": _SECONDS,
                "maximum_download_time": {**_SECONDS, "description": "seconds; 0: no limit"},
                "dynamic_content": {"type": "boolean"},
                "on_demand": {
                    "type": "boolean",
                    "description": "only before Resume; download jobs of http(s) files",
                },
                "notify_flags": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": NOTIFY_FLAGS_MASK,
                    "description": "BG_NOTIFY_* bits; other bits are 501 E_NOTIMPL, as "
                    "SetNotifyFlags answers them",
                },
                "notify_cmd_line": _ref("NotifyCmdLine"),
                "maximum_download_size": _nullable(
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_BYTE_COUNT,
                        "description": "only before Resume",
                    }
                ),
                "custom_headers": _nullable(
                    {
                        "type": "string",
                        "maxLength": MAX_CUSTOM_HEADERS_LENGTH - 1,
                        "description": "CRLF-terminated 'Name: value' lines; null or '': none",
                    }
                ),
                "http_method": _nullable(
                    {"type": "string", "description": "an HTTP token; only before Resume"}
                ),
                "security_flags": _UINT,
                "proxy": _ref("ProxySettings"),
                "ca_bundle": _nullable(_PATH),
                "client_certificate": _nullable(_ref("ClientCertificate")),
                "transfer_policy": {**_UINT, "maximum": 0xFFFFFFFF},
                "bandwidth_limit": _nullable(
                    {"type": "integer", "minimum": 1, "maximum": MAX_BYTE_COUNT}
                ),
            },
            required=(),
        ),
        "description": (
            "Every field is checked, and the fields against each other and the job, before any "
            "is applied."
        ),
    },
    "NewFiles": {
        **_object(
            {
                "files": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "remote_name": {"type": "string"},
                            "local_name": {"type": "string"},
                            "sha256": _nullable(
                                {
                                    "type": "string",
                                    "pattern": "^[0-9a-fA-F]{64}$",
                                    "description": "the expected SHA-256 (a bitsd extension)",
                                }
                            ),
                            "ranges": _nullable(
                                {
                                    "type": "array",
                                    "items": _RANGE,
                                    "minItems": 1,
                                    "maxItems": MAX_RANGES_PER_FILE,
                                    "description": "AddFileWithRanges (max_ranges_per_file)",
                                }
                            ),
                        },
                        required=("remote_name", "local_name"),
                    ),
                }
            }
        ),
        "description": (
            "A file with sha256 or ranges is the only file of its request; sha256 and ranges "
            "do not go together."
        ),
    },
    "FileList": _object({"files": {"type": "array", "items": _ref("ListedFile")}}),
    "Validation": _object({"valid": {"type": "boolean"}}),
    "RequestedRanges": _object(
        {
            "ranges": {
                "type": "array",
                "items": _RANGE,
                "minItems": 1,
                "description": "may overlap each other and what is held or asked already",
            }
        }
    ),
    "DownloadPosition": _object({"offset": {**_UINT, "maximum": MAX_BYTE_COUNT}}),
    "RemotePrefix": _object(
        {
            "old": {"type": "string", "description": "case-sensitive"},
            "new": {"type": "string"},
        }
    ),
    "Credentials": _object(
        {
            "target": _name_or_number(AuthTarget, "target"),
            "scheme": _name_or_number(AuthScheme, "scheme"),
            "user_name": _nullable({"type": "string", "maxLength": MAX_USER_NAME_LENGTH}),
            "password": _nullable(
                {"type": "string", "maxLength": MAX_PASSWORD_LENGTH, "writeOnly": True}
            ),
        },
        required=("target", "scheme"),
    ),
    "Reply": _object(
        {
            "file_name": _nullable(
                {"type": "string", "description": "null until set or generated (first Resume)"}
            ),
            "progress": _object(
                {
                    "bytes_total": {**_UINT, "description": "18446744073709551615 while unknown"},
                    "bytes_transferred": _UINT,
                }
            ),
        }
    ),
    "ReplyData": _object(
        {
            "data": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "the reply (at most 1 MiB), base64",
            }
        }
    ),
    "ReplyFileName": _object(
        {"path": _nullable({**_PATH, "description": "null: the generated name"})}
    ),
    "HResultResult": {
        **_HRESULT_RESULT,
        "description": "The call's HRESULT (S_OK, or S_FALSE where the call says) and its name",
    },
    "VerbResult": _object(
        {
            "hresult": {**_HRESULT, "description": "S_OK, or Cancel's and Complete's BG_S_* code"},
            "name": {"type": "string"},
            "state": _ref("JobState"),
        }
    ),
    "EndResult": {
        **_object(
            {
                "hresult": {
                    **_HRESULT,
                    "description": "S_OK, or Cancel's and Complete's BG_S_* code",
                },
                "name": {"type": "string"},
                "state": _ref("JobState"),
                "job": {
                    **_ref("Job"),
                    "description": "The job as it ended (the daemon forgets it)",
                },
                "files": {
                    "type": "array",
                    "items": _ref("ListedFile"),
                    "description": "The job's files, as GET .../files lists them (without "
                    "files=rows)",
                },
                "file_rows": {
                    **_ref("FileRows"),
                    "description": "The same files as FileRows, instead of files (with files=rows)",
                },
                "reply": _nullable(
                    {**_ref("Reply"), "description": "An upload-reply job's reply; null otherwise"}
                ),
            },
            required=("hresult", "name", "state", "job", "reply"),
        ),
        "oneOf": [{"required": ["files"]}, {"required": ["file_rows"]}],
    },
    "WaitResult": _object(
        {
            "state": _ref("JobState"),
            "timed_out": {"type": "boolean", "description": "true when state is not one asked"},
        }
    ),
    "Version": _object(
        {
            "version": {"type": "string"},
            "api": {"type": "integer", "const": 1},
            "pid": {"type": "integer"},
            "uid": {"type": "integer"},
        }
    ),
    "ClientMessage": {
        "description": "Messages a client sends on /v1/events (JSON text).",
        "oneOf": [
            _object(
                {
                    "op": {"const": "register"},
                    "job": {"type": "string"},
                    "methods": {"type": "array", "items": {"enum": _NOTIFY_METHODS}},
                }
            ),
            _object({"op": {"const": "unregister"}, "job": {"type": "string"}}),
            _object({"op": {"const": "watch"}}),
            _object({"op": {"const": "result"}, "call": {"type": "integer"}, "hresult": _HRESULT}),
        ],
    },
    "DaemonMessage": {
        "description": "Messages the daemon sends on /v1/events (JSON text).",
        "oneOf": [
            _object({"type": {"const": "registered"}, "job": {"type": "string"}}),
            _object(
                {
                    "type": {"const": "error"},
                    "job": {"type": "string"},
                    "error": _ERROR_DETAIL,
                },
                required=("type", "error"),
            ),
            _object(
                {
                    "type": {"const": "notify"},
                    "call": {"type": "integer"},
                    "job": {"type": "string"},
                    "method": {"enum": _NOTIFY_METHODS},
                    "error": _ref("ErrorInfo"),
                    "file": _ref("File"),
                    "ranges": {
                        "type": "array",
                        "items": _SPAN,
                        "description": "file_ranges_transferred: the ranges fetched",
                    },
                },
                required=("type", "call", "job", "method"),
            ),
            _object(
                {
                    "type": {"const": "job"},
                    "job": {"type": "string"},
                    "what": {"enum": ["state", "property", "files", "progress"]},
                    "state": _ref("JobState"),
                    "progress": _ref("JobProgress"),
                }
            ),
        ],
    },
}


def _operation(
    summary: str,
    answers: JSON,
    *errors: int,
    body: str | None = None,
    parameters: list[JSON] | None = None,
) -> JSON:
    operation: JSON = {"summary": summary, "responses": {**answers, **_errors(*errors, 500)}}
    if body is not None:
        operation["requestBody"] = _body(_ref(body))
    if parameters:
        operation["parameters"] = parameters
    return operation


def _ok(schema: str, description: str = "OK") -> JSON:
    return {"200": _answer(_ref(schema), description)}


def _verb(name: str, what: str) -> JSON:
    return {
        "post": _operation(
            f"{name}: {what}",
            _ok("VerbResult", "The verb's HRESULT and the job's state after it"),
            404,
            409,
            parameters=[_JOB_ID],
        )
    }


def _end_verb(name: str, what: str) -> JSON:
    """Cancel or Complete: the job as it ended, its files as objects or rows."""
    return {
        "post": _operation(
            f"{name}: {what}",
            _ok("EndResult", "The verb's HRESULT and the job as it ended, with its files"),
            400,
            404,
            409,
            parameters=[
                _JOB_ID,
                {
                    "name": "files",
                    "in": "query",
                    "description": "objects: the files as ListedFile objects (files); rows: "
                    "as FileRows (file_rows), the same values, for a client that ends jobs "
                    "of thousands of files. Checked before the verb: another value is 400 "
                    "and the job is not ended",
                    "schema": {"type": "string", "enum": ["objects", "rows"], "default": "objects"},
                },
            ],
        )
    }


_PATHS: JSON = {
    "/v1/version": {
        "get": _operation("The daemon's version and identity", _ok("Version")),
    },
    "/v1/openapi.json": {
        "get": _operation(
            "This document", {"200": _answer({"type": "object"}, "The OpenAPI document")}
        ),
    },
    "/v1/jobs": {
        "get": _operation(
            "Non-final jobs, oldest first, one page at a time (EnumJobs)",
            _ok("JobPage"),
            400,
            parameters=[
                {
                    "name": "offset",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": PAGE_LIMIT_MAX,
                        "default": PAGE_LIMIT_DEFAULT,
                    },
                },
                {
                    "name": "view",
                    "in": "query",
                    "description": "full: Job objects; brief: JobBrief objects (id, state, "
                    "creation time), for listing many jobs fast",
                    "schema": {"type": "string", "enum": ["full", "brief"], "default": "full"},
                },
            ],
        ),
        "post": _operation(
            "Create a job (CreateJob): SUSPENDED with no files, or with files, a priority "
            "and started, as the body asks",
            {
                "201": _answer(
                    {"oneOf": [_ref("Job"), _ref("JobBrief")]},
                    "The new job (a Job), or with view=brief its JobBrief",
                )
            },
            400,
            409,
            501,
            body="NewJob",
            parameters=[
                {
                    "name": "view",
                    "in": "query",
                    "description": "full: the new job as a Job object; brief: a JobBrief (id, "
                    "state, creation time), for a client that only needs the id",
                    "schema": {"type": "string", "enum": ["full", "brief"], "default": "full"},
                },
            ],
        ),
    },
    "/v1/jobs/{id}": {
        "get": _operation("A job (GetJob)", _ok("Job"), 404, parameters=[_JOB_ID]),
        "patch": _operation(
            "Change a job's properties, all or none",
            _ok("Job", "The job after the change"),
            400,
            404,
            409,
            501,
            body="JobPatch",
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/files": {
        "get": _operation(
            "The job's files in transfer order (EnumFiles)",
            _ok("FileList"),
            404,
            parameters=[_JOB_ID],
        ),
        "post": _operation(
            "Add files, all or none (AddFileSet)",
            {
                "200": _answer(
                    {"oneOf": [_ref("FileList"), _ref("FilesAdded")]},
                    "The files added (a FileList), or with view=brief how many (FilesAdded)",
                )
            },
            400,
            404,
            409,
            body="NewFiles",
            parameters=[
                _JOB_ID,
                {
                    "name": "view",
                    "in": "query",
                    "description": "full: the files added, as GET .../files lists them; brief: "
                    "their count only, for a client that does not need them (a job of "
                    "thousands of files)",
                    "schema": {"type": "string", "enum": ["full", "brief"], "default": "full"},
                },
            ],
        ),
    },
    "/v1/jobs/{id}/files/{index}/validation": {
        "put": _operation(
            "Accept or reject a finished file (SetValidationState); false puts the job in ERROR "
            "(BG_E_VALIDATION_FAILED) and Resume downloads the file again",
            _ok("VerbResult", "S_OK and the job's state after it"),
            400,
            404,
            409,
            body="Validation",
            parameters=[_JOB_ID, _FILE_INDEX],
        ),
    },
    "/v1/jobs/{id}/files/{index}/requested-ranges": {
        "post": _operation(
            "Ask for ranges of a file of an on-demand job, fetched first (RequestFileRanges); "
            "BG_E_RANDOM_ACCESS_NOT_SUPPORTED when the job is not on-demand, BG_E_INVALID_RANGE "
            "for a range outside the file",
            _ok("HResultResult", "S_OK"),
            400,
            404,
            409,
            body="RequestedRanges",
            parameters=[_JOB_ID, _FILE_INDEX],
        ),
    },
    "/v1/jobs/{id}/files/{index}/download-position": {
        "put": _operation(
            "Where filling an on-demand file's gaps starts (UpdateDownloadPosition)",
            _ok("HResultResult", "S_OK"),
            400,
            404,
            409,
            body="DownloadPosition",
            parameters=[_JOB_ID, _FILE_INDEX],
        ),
    },
    "/v1/jobs/{id}/replace-remote-prefix": {
        "post": _operation(
            "Replace a leading part of the remote names (ReplaceRemotePrefix)",
            _ok("HResultResult", "S_OK, or S_FALSE when no remote name starts with old"),
            400,
            404,
            409,
            body="RemotePrefix",
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/credentials": {
        "put": _operation(
            "Set the credentials of a target and scheme (SetCredentials); they are never "
            "returned nor logged",
            _ok("HResultResult", "S_OK"),
            400,
            404,
            409,
            501,
            body="Credentials",
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/credentials/{target}/{scheme}": {
        "delete": _operation(
            "Forget the credentials of a target and scheme (RemoveCredentials)",
            _ok("HResultResult", "S_OK, or S_FALSE when there were none"),
            400,
            404,
            409,
            parameters=[
                _JOB_ID,
                {
                    "name": "target",
                    "in": "path",
                    "required": True,
                    "description": "SERVER or PROXY (any case), or its number",
                    "schema": {"type": "string"},
                },
                {
                    "name": "scheme",
                    "in": "path",
                    "required": True,
                    "description": "BASIC, DIGEST, NTLM or NEGOTIATE (any case), or its number",
                    "schema": {"type": "string"},
                },
            ],
        ),
    },
    "/v1/jobs/{id}/custom-headers/write-only": {
        "post": _operation(
            "Make the custom headers write-only, for good",
            _ok("HResultResult", "S_OK"),
            404,
            409,
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/reply": {
        "get": _operation(
            "The reply's file name and progress of an upload-reply job (GetReplyFileName, "
            "GetReplyProgress)",
            _ok("Reply"),
            404,
            501,
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/reply/data": {
        "get": _operation(
            "The reply of a TRANSFERRED upload-reply job, in memory (GetReplyData); "
            "BG_E_TOO_LARGE over 1 MiB",
            _ok("ReplyData"),
            400,
            404,
            409,
            501,
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/reply/file-name": {
        "put": _operation(
            "Where the reply of an upload-reply job goes (SetReplyFileName)",
            _ok("HResultResult", "S_OK"),
            400,
            404,
            409,
            501,
            body="ReplyFileName",
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/resume": _verb("Resume", "queue the job for transfer"),
    "/v1/jobs/{id}/suspend": _verb("Suspend", "stop transferring, keep the progress"),
    "/v1/jobs/{id}/cancel": _end_verb("Cancel", "remove the job and its temporary files"),
    "/v1/jobs/{id}/complete": _end_verb("Complete", "move the files to their final names"),
    "/v1/jobs/{id}/error": {
        "get": _operation(
            "The error of a job in ERROR or TRANSIENT_ERROR (GetError)",
            _ok("ErrorInfo"),
            404,
            409,
            parameters=[_JOB_ID],
        ),
    },
    "/v1/jobs/{id}/wait": {
        "get": _operation(
            "Wait until the job is in one of the states",
            _ok("WaitResult"),
            400,
            404,
            parameters=[
                _JOB_ID,
                {
                    "name": "states",
                    "in": "query",
                    "required": True,
                    "description": "Comma-separated state names or numbers",
                    "schema": {"type": "string"},
                    "example": "TRANSFERRED,ERROR",
                },
                {
                    "name": "timeout",
                    "in": "query",
                    "description": f"Seconds; larger values are capped at {WAIT_TIMEOUT_MAX:g}",
                    "schema": {"type": "number", "minimum": 0, "default": WAIT_TIMEOUT_DEFAULT},
                },
            ],
        ),
    },
    "/v1/events": {
        "get": {
            "summary": "The event stream (WebSocket): remote callbacks and job events",
            "description": (
                "Upgrade to a WebSocket. Client messages: ClientMessage; daemon messages: "
                "DaemonMessage. register makes the connection the job's notify interface (the "
                "last registration wins) and is answered registered or error; the daemon then "
                "sends notify calls and waits for the result of each. watch subscribes to job "
                "events of every job. When the connection closes, unanswered calls fail "
                "(E_FAIL) and its registrations are removed."
            ),
            "responses": {"101": {"description": "Switching Protocols"}},
        },
    },
}

DOCUMENT: JSON = {
    "openapi": "3.1.0",
    "info": {
        "title": "bitsd control API",
        "version": bitsd.__version__,
        "description": (
            "HTTP/1.1 and JSON over the daemon's Unix socket (docs/control-api.md). Any non-2xx "
            "answer has the body Error."
        ),
    },
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "responses": {
            name: _answer(_ref("Error"), description)
            for name, description in _ERROR_RESPONSES.values()
        },
    },
}


def render() -> str:
    """The text of docs/openapi.json."""
    return json.dumps(DOCUMENT, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")

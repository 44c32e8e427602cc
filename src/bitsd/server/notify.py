"""The notification exchange: hand a finished upload to the server application, get its reply
(the wire reference's §3.3).

Rules:
- One ``POST`` to the notification URL (the upload URL's query string appended), with
  ``BITS-Original-Request-URL`` (the absolute upload URL). By reference, the body is empty and
  ``BITS-Request-DataFile-Name`` / ``BITS-Response-DataFile-Name`` give the full paths of the
  uploaded file and of the file to write the reply into. By value, the uploaded file is the
  body and the response body is the reply.
- Any 2xx is success. By reference, a reply file the application did not write is an empty
  reply. ``BITS-Static-Response-URL`` names the reply instead (nothing is stored or served);
  ``BITS-Copy-File-To-Destination`` asks for the upload at its URL too.
- Failures never raise; they come back as an :class:`Outcome` with the Ack status and code of
  ``protocol.application_failure`` (context 0x7): the application's non-2xx status (redirects
  are not followed); 408 / the spec's timeout code when it does not answer within the timeout;
  502 with the connection error's code when it cannot be reached; 400 / E_INVALIDARG for a
  static reply URL over 2,200 characters.
- No proxy from the environment: the application is the server's own back end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

import bitsd
from bitsd import codes
from bitsd.server.config import NotifyType
from bitsd.server.protocol import SPEC_NOTIFY_TIMEOUT, application_failure

__all__ = ["MAX_REPLY_URL", "Notification", "Outcome", "notify"]

# Longest BITS-Reply-URL (MC-BUP §2.2.7.2).
MAX_REPLY_URL: Final = 2200
USER_AGENT: Final = f"bitsd/{bitsd.__version__} (BITS upload server)"
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class Notification:
    """One notification to send.

    Attributes:
        url: the notification URL, resolved and with the upload URL's query appended.
        original_url: the absolute upload URL.
        request_file: the uploaded data.
        reply_file: where the reply goes.
        notify_type: by reference or by value.
        timeout: seconds the application has to answer (headers and body).
    """

    url: str
    original_url: str
    request_file: Path
    reply_file: Path
    notify_type: NotifyType
    timeout: float


@dataclass(frozen=True)
class Outcome:
    """What the application answered.

    Attributes:
        ok: it succeeded; the reply is in the reply file, or at ``static_url``.
        static_url: ``BITS-Static-Response-URL``, if it named the reply itself.
        copy_to_destination: ``BITS-Copy-File-To-Destination`` was present.
        status: the Ack status to send on failure (0 on success).
        code: the ``BITS-Error-Code`` on failure.
        detail: what happened, for the log.
    """

    ok: bool
    static_url: str | None = None
    copy_to_destination: bool = False
    status: int = 0
    code: int = 0
    detail: str = ""


def _failed(status: int, detail: str) -> Outcome:
    ack_status, code = application_failure(status)
    return Outcome(ok=False, status=ack_status, code=code, detail=detail)


async def notify(n: Notification) -> Outcome:
    """Send the notification; never raises for the application's failures (see the rules)."""
    headers = {"BITS-Original-Request-URL": n.original_url, "User-Agent": USER_AGENT}
    by_value = n.notify_type is NotifyType.BY_VALUE
    partial = n.reply_file.with_name(n.reply_file.name + ".part")
    _remove(n.reply_file)
    try:
        async with (
            asyncio.timeout(n.timeout),
            aiohttp.ClientSession(trust_env=False, auto_decompress=False) as http,
        ):
            if by_value:
                body = await asyncio.to_thread(open, n.request_file, "rb")
                with body:
                    size = os.fstat(body.fileno()).st_size
                    headers["Content-Length"] = str(size)
                    headers["Content-Type"] = "application/octet-stream"
                    async with http.post(
                        n.url, data=body, headers=headers, allow_redirects=False
                    ) as response:
                        return await _answer(n, response, partial)
            headers["BITS-Request-DataFile-Name"] = str(n.request_file)
            headers["BITS-Response-DataFile-Name"] = str(n.reply_file)
            headers["Content-Length"] = "0"
            async with http.post(n.url, headers=headers, allow_redirects=False) as response:
                return await _answer(n, response, partial)
    except TimeoutError:
        return Outcome(
            ok=False,
            status=408,
            code=SPEC_NOTIFY_TIMEOUT,
            detail=f"no answer within {n.timeout:g} s",
        )
    except aiohttp.ClientConnectorError as exc:
        code = codes.hresult_from_errno(exc.os_error.errno or 0)
        return Outcome(ok=False, status=502, code=code, detail=f"unreachable: {exc}")
    except (aiohttp.ClientError, OSError) as exc:
        code = codes.hresult_from_errno(getattr(exc, "errno", None) or 0)
        return Outcome(ok=False, status=502, code=code, detail=f"failed: {exc!r}")
    finally:
        _remove(partial)


async def _answer(n: Notification, response: aiohttp.ClientResponse, partial: Path) -> Outcome:
    if not 200 <= response.status < 300:
        return _failed(response.status, f"answered {response.status}")
    static = response.headers.get("BITS-Static-Response-URL")
    copy = "BITS-Copy-File-To-Destination" in response.headers
    if static is not None:
        static = static.strip()
        if len(static) > MAX_REPLY_URL or not static:
            return Outcome(
                ok=False,
                status=400,
                code=codes.E_INVALIDARG,
                detail="BITS-Static-Response-URL is empty or longer than 2,200 characters",
            )
        return Outcome(ok=True, static_url=static, copy_to_destination=copy)
    if n.notify_type is NotifyType.BY_VALUE:
        out = await asyncio.to_thread(open, partial, "wb")
        with out:
            async for chunk in response.content.iter_chunked(_CHUNK):
                await asyncio.to_thread(out.write, chunk)
        os.replace(partial, n.reply_file)
    elif not n.reply_file.exists():
        n.reply_file.touch()  # no reply written: the reply is empty
    return Outcome(ok=True, copy_to_destination=copy)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

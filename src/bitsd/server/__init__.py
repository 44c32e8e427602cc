"""The BITS upload server: the server side of [MC-BUP] (``BITS_POST``), so that Windows BITS
clients and bitsd upload to Linux (docs/upload-server.md).

Modules, one concept each:

- ``protocol``: packets, Acks, ranges, session ids, error codes: pure, no I/O;
- ``config``: the server's settings, one frozen value;
- ``paths``: URL path to file under the root, confined; atomic placement;
- ``sessions``: upload sessions on disk (they survive a restart);
- ``notify``: handing an upload to the server application (upload-reply);
- ``app``: the ASGI app (Starlette), :func:`make_app` and :class:`UploadServer`;
- ``run``: serving an app with uvicorn (h11) in the current event loop;
- ``cli``: ``bitsd upload-server`` and ``python -m bitsd.server``.

Use it standalone (``bitsd upload-server --root DIR``) or mount it in your own ASGI service::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from bitsd.server import make_app

    app = Starlette(routes=[Mount("/uploads", app=make_app("/srv/uploads"))])

(serve that with uvicorn's ``--http h11``: other HTTP parsers refuse the ``BITS_POST`` method).
"""

from bitsd.server.app import UploadServer, make_app
from bitsd.server.config import (
    DEFAULT_MAX_FRAGMENT_SIZE,
    DEFAULT_SESSION_TIMEOUT,
    NOTIFY_TIMEOUT,
    NotifyType,
    ServerConfig,
)
from bitsd.server.run import Serving

__all__ = [
    "DEFAULT_MAX_FRAGMENT_SIZE",
    "DEFAULT_SESSION_TIMEOUT",
    "NOTIFY_TIMEOUT",
    "NotifyType",
    "ServerConfig",
    "Serving",
    "UploadServer",
    "make_app",
]

"""The bitsd daemon: the per-user service behind ``bitsd.connect()`` (docs/daemon.md).

Modules, one concept each:

- ``paths``: where the state, the control socket and the config file are;
- ``config``: the TOML config file, checked whole;
- ``lock``: one daemon per state folder (``daemon.lock``);
- ``listen``: the control socket, 0600 from its first instant;
- ``connections``: SO_PEERCRED, the daemon's own uid only, and a request read deadline;
- ``shapes``: the Job object and checked request bodies;
- ``app``: the HTTP routes of docs/control-api.md;
- ``events``: the WebSocket hub (remote callbacks, job events);
- ``openapi``: the OpenAPI document;
- ``logs``: one logfmt line per event;
- ``sdnotify``: systemd readiness;
- ``service``: start, run, reload, stop;
- ``cli``: ``bitsd serve`` and ``python -m bitsd.daemon``.

Nothing is imported here, so a client may use ``bitsd.daemon.paths`` without loading the server.
"""

"""``python -m bitsd.daemon``: the daemon in the foreground (``--detach``: in the background).

This is the command the clients use to start a daemon that is not running.
"""

from bitsd.daemon.cli import serve_command

if __name__ == "__main__":
    serve_command(prog_name="python -m bitsd.daemon")

"""``python -m bitsd.server``: the BITS upload server, the same as ``bitsd upload-server``."""

from bitsd.server.cli import upload_server_command

if __name__ == "__main__":
    upload_server_command(prog_name="python -m bitsd.server")

"""The splice bound of issue 7: the least a Python process can spend fetching one file over
plain HTTP. A raw socket sends a GET, the head is read and skipped, and the body moves socket →
pipe → file with ``os.splice`` (zero copy), nothing else: no parsing beyond the blank line, no
resume, no fsync, no state. bench/suite.py runs it beside curl, wget and aria2c in scenario 1.

Usage: ``python bench/splice_bound.py URL OUTPUT``
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import urllib.parse

PIPE_SIZE = 1024 * 1024


def fetch(url: str, output: str) -> int:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = socket.create_connection((host, port))
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("no answer")
        head += chunk
    head, early = head.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, early)
    rest = length - len(early)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    while rest:
        moved = os.splice(sock.fileno(), write_end, min(rest, PIPE_SIZE), flags=os.SPLICE_F_MOVE)
        if not moved:
            raise SystemExit("closed early")
        left = moved
        while left:
            left -= os.splice(read_end, fd, left, flags=os.SPLICE_F_MOVE)
        rest -= moved
    os.close(fd)
    return length


if __name__ == "__main__":
    fetch(sys.argv[1], sys.argv[2])

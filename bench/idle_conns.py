#!/usr/bin/env python3
"""Open N idle TCP connections to a memcached-protocol server and hold them.

Usage: idle_conns.py HOST PORT N

Raises RLIMIT_NOFILE, connects N sockets (sending nothing on them), then polls
`stats` on one more connection until the server reports all N (+1) connected, prints
"ready" and holds everything until stdin is closed. Used by bench/memcached.sh to read
the servers' RSS with 10k idle connections; run as its own process so that the
client's and the server's fds do not share one fd limit.
"""
import resource
import socket
import sys
import time


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    conns = []
    for _ in range(n):
        conns.append(socket.create_connection((host, port), timeout=30))
    ctl = socket.create_connection((host, port), timeout=30)
    deadline = time.monotonic() + 60
    while True:
        ctl.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            chunk = ctl.recv(65536)
            if not chunk:
                sys.exit("server closed the stats connection")
            buf += chunk
        curr = 0
        for line in buf.split(b"\r\n"):
            if line.startswith(b"STAT curr_connections "):
                curr = int(line.split()[2])
        if curr >= n + 1:
            break
        if time.monotonic() > deadline:
            sys.exit(f"server reports {curr} connections, wanted {n + 1}")
        time.sleep(0.05)
    print("ready", flush=True)
    sys.stdin.read()  # hold until the caller closes our stdin
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()

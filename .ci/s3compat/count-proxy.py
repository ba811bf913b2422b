#!/usr/bin/env python3
"""A counting reverse proxy for the S3 compatibility matrix.

Listens on 127.0.0.1:PORT and relays every HTTP/1.1 request to an upstream
S3 server byte for byte: the request head (Host header included, so SigV4
signatures still verify) and body go out unchanged, the response comes back
unchanged, bodies are streamed (Content-Length, chunked, or read to close),
and `Expect: 100-continue` is honoured. Nothing is parsed beyond the framing.

For every request it appends one JSON line to the log file:
  {"method": "GET", "path": "/bucket/key", "query": "partNumber=1",
   "range": "bytes=0-99" or null, "status": 206, "bytes": 100}
where `bytes` counts the response body bytes relayed. The line is written
and flushed before the last byte of the response goes back to the client,
so once the client has its answer, the log already holds it.

Usage: count-proxy.py --listen PORT --upstream HOST:PORT --log FILE [--port-file F]
(--listen 0 picks a free port and writes it to --port-file).
"""

import argparse
import json
import os
import select
import socket
import socketserver
import sys
import threading
from urllib.parse import unquote, urlsplit

CHUNK = 256 * 1024


class Closed(Exception):
    """The peer closed the connection where HTTP allows it."""


class Reader:
    """Buffered reads from a socket: lines for heads, blocks for bodies."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(CHUNK)
        if not data:
            raise Closed()
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 64 * 1024:
                raise ValueError("header line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def head(self):
        """Raw head bytes up to and including the blank line, and its lines."""
        raw = b""
        lines = []
        while True:
            line = self.line()
            raw += line
            if line == b"\r\n":
                if not lines:  # tolerate stray CRLF between requests
                    raw = b""
                    continue
                return raw, lines
            lines.append(line[:-2].decode("latin-1"))

    def ready(self, timeout):
        """Whether bytes are buffered or arrive within `timeout` seconds."""
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])

    def some(self, limit):
        """Up to `limit` bytes (at least one)."""
        if not self.buf:
            self._fill()
        out, self.buf = self.buf[:limit], self.buf[limit:]
        return out


def headers_of(lines):
    out = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        out.setdefault(name.strip().lower(), value.strip())
    return out


def relay_body(src, send, headers, *, is_response, on_last):
    """Stream one message body from `src` to `send`; return its body size.

    `on_last(size)` runs just before the final piece is sent (or at once for
    an empty body)."""
    total = 0
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        pending = b""
        while True:
            size_line = src.line()
            size = int(size_line.split(b";")[0].strip(), 16)
            pending += size_line
            remaining = size + 2  # data and its CRLF
            if size == 0:
                # trailers, then the blank line
                while True:
                    line = src.line()
                    pending += line
                    if line == b"\r\n":
                        break
                on_last(total)
                send(pending)
                return total
            while remaining:
                piece = src.some(remaining)
                remaining -= len(piece)
                pending += piece
                if len(pending) >= CHUNK:
                    send(pending)
                    pending = b""
            total += size
    if "content-length" in headers:
        remaining = int(headers["content-length"])
        if remaining == 0:
            on_last(0)
            return 0
        while remaining:
            piece = src.some(min(remaining, CHUNK))
            remaining -= len(piece)
            total += len(piece)
            if remaining == 0:
                on_last(total)
            send(piece)
        return total
    if not is_response:
        on_last(0)
        return 0
    # a response delimited by closing the connection
    while True:
        try:
            piece = src.some(CHUNK)
        except Closed:
            on_last(total)
            return total
        total += len(piece)
        send(piece)


class Log:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, entry):
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        client = self.request
        upstream = socket.create_connection(self.server.upstream)
        try:
            self.serve(client, upstream)
        except (Closed, ConnectionError, OSError):
            pass
        except Exception as err:  # keep serving other connections, but say why
            print(f"count-proxy: connection dropped: {err!r}", file=sys.stderr, flush=True)
        finally:
            upstream.close()

    def serve(self, client, upstream):
        creader, ureader = Reader(client), Reader(upstream)
        while True:
            raw, lines = creader.head()
            method, target, _ = lines[0].split(" ", 2)
            req_headers = headers_of(lines)
            url = urlsplit(target)
            entry = {
                "method": method,
                "path": unquote(url.path),
                "query": url.query,
                "range": req_headers.get("range"),
            }
            upstream.sendall(raw)
            expect = req_headers.get("expect", "").lower() == "100-continue"
            body_sent = False
            if not expect:
                relay_body(creader, upstream.sendall, req_headers,
                           is_response=False, on_last=lambda _n: None)
                body_sent = True
            if expect and not ureader.ready(1.0):
                # The server waits for the body without a 100 Continue:
                # send it, as a client does after its own short wait.
                relay_body(creader, upstream.sendall, req_headers,
                           is_response=False, on_last=lambda _n: None)
                body_sent = True
            while True:
                rraw, rlines = ureader.head()
                status = int(rlines[0].split(" ", 2)[1])
                if 100 <= status < 200:
                    client.sendall(rraw)
                    if status == 100 and not body_sent:
                        relay_body(creader, upstream.sendall, req_headers,
                                   is_response=False, on_last=lambda _n: None)
                        body_sent = True
                    continue
                break
            resp_headers = headers_of(rlines)
            entry["status"] = status

            def log_now(size, entry=entry):
                entry["bytes"] = size
                self.server.log.write(entry)

            no_body = method == "HEAD" or status in (204, 304)
            if no_body:
                log_now(0)
                client.sendall(rraw)
            else:
                client.sendall(rraw)
                relay_body(ureader, client.sendall, resp_headers,
                           is_response=True, on_last=log_now)
            closing = "close" in resp_headers.get("connection", "").lower() or (
                not no_body
                and "content-length" not in resp_headers
                and "chunked" not in resp_headers.get("transfer-encoding", "").lower()
            )
            if closing or not body_sent:
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    server = Server(("127.0.0.1", args.listen), Handler)
    server.upstream = (host, int(port))
    server.log = Log(args.log)
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

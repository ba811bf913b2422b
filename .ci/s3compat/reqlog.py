"""Read what count-proxy.py logged and name the S3 operations.

Used by scenario.py. Path-style requests only (`/bucket/key`), which is what
the matrix configures everywhere.
"""

import json
from collections import Counter
from urllib.parse import parse_qs


class Request:
    """One logged request, with its S3 operation name."""

    def __init__(self, entry):
        self.method = entry["method"]
        self.path = entry["path"]
        self.query = parse_qs(entry["query"], keep_blank_values=True)
        self.range = entry.get("range")
        self.status = entry["status"]
        self.bytes = entry["bytes"]
        bucket, _, key = self.path.lstrip("/").partition("/")
        self.bucket, self.key = bucket, key
        self.op = self._op()

    def _op(self):
        q, m = self.query, self.method
        if not self.key:
            if m == "GET" and q.get("list-type") == ["2"]:
                return "ListObjectsV2"
            if m == "GET" and not (set(q) - {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}):
                return "ListObjects"
            return f"bucket:{m}:{'&'.join(sorted(q))}"
        if m == "GET":
            if "attributes" in q:
                return "GetObjectAttributes"
            if "uploadId" in q:
                return "ListParts"
            return "GetObject"
        if m == "HEAD":
            return "HeadObject"
        if m == "PUT":
            return "UploadPart" if "uploadId" in q else "PutObject"
        if m == "POST":
            return "CreateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload"
        if m == "DELETE":
            return "DeleteObject"
        return f"{m}?"

    def ok(self):
        return 200 <= self.status < 300

    def __str__(self):
        extra = f" range={self.range}" if self.range else ""
        return f"{self.op} {self.path}{extra} -> {self.status}, {self.bytes} bytes"


class Log:
    """The proxy's log, read in slices: mark() before a sync, since() after."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def mark(self):
        with open(self.path, "rb") as f:
            f.seek(0, 2)
            self.offset = f.tell()

    def since(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        return [Request(json.loads(line)) for line in data.decode().splitlines() if line.strip()]


def op_counts(requests):
    return Counter(r.op for r in requests)


def fetched_bytes(requests, prefix):
    """Body bytes of successful GetObject responses, per key relative to `prefix`."""
    out = Counter()
    for r in requests:
        if r.op == "GetObject" and r.ok() and r.key.startswith(prefix):
            out[r.key[len(prefix):]] += r.bytes
    return out


def get_counts(requests, prefix):
    """Successful GetObject responses, per key relative to `prefix`."""
    return Counter(
        r.key[len(prefix):] for r in requests if r.op == "GetObject" and r.ok() and r.key.startswith(prefix)
    )

#!/usr/bin/env python3
"""The compatibility scenario for one S3 server (run by .ci/s3-compat.sh).

Publishes a tree the way users do (`aws s3 sync`, the CLI's defaults: 8 MiB
multipart threshold and parts, its default checksum), then runs `s3-seed
sync` through count-proxy.py and checks, from the files on disk, the JSON
summary and the requests the proxy relayed:

  cold     every file hash-equal; each object fetched exactly once (GET body
           bytes per key = its size); one LIST per 1,000 keys; nothing written
  warm     one LIST per 1,000 keys and no other request (no GET, no HEAD)
  change   one object rewritten with the same size: exactly that one fetched
  prune    one object deleted: exactly that file pruned, a user's file kept
  multipart the aws CLI's multipart object counts as verified or unverified
           as the server's file says (--multipart-verified)
  delta    one byte of that object's second part changed and the object
           uploaded again with `aws s3 cp` and its defaults: where the server
           lists the parts with their checksums (--delta 1) only that part is
           fetched and the rest is reused from the installed file; elsewhere
           (--delta 0) the whole object is fetched again
  probe    what the server reports per part for multipart uploads made with
           `aws s3 cp --checksum-algorithm ALG` (HEAD checksum and type,
           GetObjectAttributes ObjectParts, HEAD ?partNumber=1), checked
           against the parts' checksums computed here; the result must equal
           --part-checksums (what the README records for this server).

The aws CLI talks to the server directly; only s3-seed goes through the proxy.
"""

import argparse
import base64
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reqlog  # noqa: E402

BUCKET = "compat"
PREFIX = "data/"
MIB = 1024 * 1024
AWS_PART = 8 * MIB  # the aws CLI's multipart_threshold and multipart_chunksize
MANY = 1000  # tiny objects: with the others, the listing takes two pages
MULTIPART = "big/multipart.bin"
MULTIPART_SIZE = 25 * MIB + 12345  # four parts with the CLI's defaults
PROBE_SIZE = 17 * MIB  # three parts: 8, 8 and 1 MiB
# The aws CLI computes CRC32C and CRC64NVME only with awscrt installed: those
# uploads use the CLI in the --crt-venv (awscli + awscrt), the others the
# plain CLI on PATH.
PROBE_ALGORITHMS = ["CRC32", "SHA256", "CRC32C", "CRC64NVME"]
CRT_ALGORITHMS = {"CRC32C", "CRC64NVME"}


class Failure(Exception):
    pass


def say(msg):
    print(f"  {msg}", flush=True)


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


class Env:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.src = self.work / "src"
        self.target = self.work / "target"
        self.log = reqlog.Log(args.log)

    def aws(self, *argv, check=True, crt=False):
        exe = str(Path(self.args.crt_venv) / "bin" / "aws") if crt else "aws"
        cmd = [exe, "--endpoint-url", self.args.direct, *argv]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise Failure(f"`aws {' '.join(argv)}` failed: {res.stderr.strip()}")
        return res

    def upload(self, *argv, crt=False):
        """`aws s3 sync|cp ...`, tried up to three times.

        botocore sends `Expect: 100-continue` with each part and sends the
        body anyway after waiting 1 s; when a loaded server's `100 Continue`
        comes later than that, botocore reads it as the answer and the part
        fails with `KeyError: 'ETag'` (seen with MinIO on a busy machine).
        That is the client's race, not the server's or s3-seed's: upload
        again (sync and cp are idempotent) and say so.
        """
        for attempt in (1, 2, 3):
            res = self.aws(*argv, check=False, crt=crt)
            if res.returncode == 0:
                return
            why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "?"
            say(f"`aws {argv[0]} {argv[1]}` attempt {attempt} failed ({why}); "
                + ("uploading again" if attempt < 3 else "giving up"))
        raise Failure(f"`aws {' '.join(argv)}` failed three times: {res.stderr.strip()}")

    def aws_json(self, *argv):
        res = self.aws(*argv, "--output", "json", check=False)
        if res.returncode != 0:
            return None, error_code(res.stderr)
        return json.loads(res.stdout or "{}"), None

    def sync(self, label, prefix=PREFIX, target=None):
        """Run s3-seed; return (summary, requests, stderr)."""
        target = target or self.target
        env = dict(
            os.environ,
            S3_SEED_SOURCE=f"s3://{BUCKET}/{prefix}",
            S3_SEED_TARGET=str(target),
            S3_SEED_ENDPOINT=self.args.proxied,
            S3_SEED_PATH_STYLE="true",
            S3_SEED_SUMMARY_FORMAT="json",
            S3_SEED_TERMINATION_LOG=str(self.work / "termination-log"),
        )
        self.log.mark()
        started = time.monotonic()
        res = subprocess.run([self.args.bin, "sync"], env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        requests = self.log.since()
        if res.returncode != 0:
            raise Failure(f"{label}: s3-seed sync exited {res.returncode}:\n{indent(res.stderr)}")
        lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
        expect(lines, f"{label}: no JSON summary on stdout: {res.stdout!r}")
        summary = json.loads(lines[-1])
        counts = dict(sorted(reqlog.op_counts(requests).items()))
        say(f"{label}: {took:.1f} s, summary {compact(summary)}, requests {counts}")
        return summary, requests, res.stderr


def error_code(stderr):
    """`An error occurred (501) when calling ...` -> `501`."""
    text = stderr.strip()
    if "An error occurred (" in text:
        return text.split("An error occurred (", 1)[1].split(")", 1)[0]
    return text.splitlines()[-1][:80] if text else "error"


def indent(text):
    return "\n".join("    " + l for l in text.strip().splitlines()[-30:])


def compact(summary):
    keys = ("listed", "skipped", "downloaded", "verified", "unverified", "pruned", "bytes")
    return {k: summary.get(k) for k in keys}


def pages(n):
    return max(1, math.ceil(n / 1000))


# ---------------------------------------------------------------- the tree


def make_tree(src):
    rng = random.Random(11)
    files = {
        "small.txt": b"hello from the s3 compatibility matrix\n",
        "empty.bin": b"",
        "dir/with space.txt": b"spaces survive\n",
        "dir/nested.bin": rng.randbytes(100_000),
        "medium.bin": rng.randbytes(3 * MIB + 7),
        MULTIPART: rng.randbytes(MULTIPART_SIZE),
    }
    for i in range(MANY):
        files[f"many/k{i:04}"] = f"{i}\n".encode()
    for rel, data in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tree(root):
    """Relative path -> (size, sha256) of every regular file, .s3-seed/ aside."""
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".s3-seed/") or not path.is_file():
            continue
        out[rel] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def expect_same_tree(env, label, extra=()):
    want, got = tree(env.src), tree(env.target)
    for rel in extra:
        got.pop(rel, None)
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    differ = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    expect(not (missing or unexpected or differ),
           f"{label}: target differs from the source: missing {missing[:5]}, "
           f"unexpected {unexpected[:5]}, different {differ[:5]}")


def expect_summary(label, summary, **want):
    wrong = {k: (summary.get(k), v) for k, v in want.items() if summary.get(k) != v}
    expect(not wrong, f"{label}: summary fields (got, expected): {wrong}; summary {summary}")


def expect_ops(label, requests, want):
    got = dict(reqlog.op_counts(requests))
    expect(got == want, f"{label}: requests {got}, expected exactly {want}:\n"
           + indent("\n".join(map(str, requests[:40]))))


def expect_each_fetched_once(label, requests, sizes):
    """Every key in `sizes` is fetched in full exactly once; no other key is."""
    fetched = reqlog.fetched_bytes(requests, PREFIX)
    gets = reqlog.get_counts(requests, PREFIX)
    wrong = {k: (fetched.get(k, 0), size) for k, size in sizes.items()
             if fetched.get(k, 0) != size or gets.get(k, 0) == 0}
    others = sorted(set(gets) - set(sizes))
    expect(not wrong and not others,
           f"{label}: GET body bytes per key (fetched, size): {dict(list(wrong.items())[:5])}; "
           f"fetched but not expected: {others[:5]}")
    failed = [r for r in requests if not r.ok() and r.op != "GetObjectAttributes"]
    expect(not failed, f"{label}: failed requests: " + "; ".join(map(str, failed[:5])))


# ---------------------------------------------------------------- phases


def publish(env):
    make_tree(env.src)
    env.aws("s3api", "create-bucket", "--bucket", BUCKET)
    started = time.monotonic()
    env.upload("s3", "sync", "--only-show-errors", str(env.src), f"s3://{BUCKET}/{PREFIX}")
    head, err = env.aws_json("s3api", "head-object", "--bucket", BUCKET, "--key", PREFIX + MULTIPART)
    expect(head is not None, f"head-object {MULTIPART}: {err}")
    parts = math.ceil(MULTIPART_SIZE / AWS_PART)
    expect(head["ETag"].strip('"').endswith(f"-{parts}"),
           f"{MULTIPART} was not uploaded in {parts} parts (ETag {head['ETag']})")
    say(f"published {len(tree(env.src))} files with `aws s3 sync` in "
        f"{time.monotonic() - started:.1f} s ({MULTIPART}: ETag {head['ETag']})")


def cold(env):
    sizes = {rel: size for rel, (size, _) in tree(env.src).items()}
    n, total = len(sizes), sum(sizes.values())
    multipart = [rel for rel, size in sizes.items() if size > AWS_PART]
    mp_verified = env.args.multipart_verified
    summary, requests, stderr = env.sync("cold sync")
    expect_summary("cold sync", summary, listed=n, downloaded=n, skipped=0, pruned=0,
                   bytes=total, verified=n - len(multipart) + mp_verified,
                   unverified=len(multipart) - mp_verified)
    expect_same_tree(env, "cold sync")
    expect_each_fetched_once("cold sync", requests, sizes)
    counts = reqlog.op_counts(requests)
    expect(counts["ListObjectsV2"] == pages(n),
           f"cold sync: {counts['ListObjectsV2']} listings for {n} keys, expected {pages(n)}")
    large = {PREFIX + rel for rel, size in sizes.items() if size > AWS_PART}
    allowed = {"ListObjectsV2", "GetObject", "HeadObject", "GetObjectAttributes"}
    expect(set(counts) <= allowed, f"cold sync: unexpected operations {set(counts) - allowed}")
    stray = [str(r) for r in requests if r.op in ("HeadObject", "GetObjectAttributes")
             and r.key not in large]
    expect(not stray, f"cold sync: HEAD/GetObjectAttributes for small objects: {stray[:5]}")
    for line in stderr.splitlines():
        if MULTIPART in line:
            say(f"s3-seed on {MULTIPART}: {line.split(': ', 1)[-1].strip()}")
    for r in requests:
        if r.op == "GetObjectAttributes":
            say(f"s3-seed asked GetObjectAttributes: status {r.status}")
    verified = state_verified(env.target).get(PREFIX + MULTIPART)
    say(f"{MULTIPART}: recorded as {verified or 'unverified'} "
        f"(expected verified count {mp_verified} of {len(multipart)})")
    return n


def warm(env, n):
    summary, requests, _ = env.sync("warm sync")
    expect_summary("warm sync", summary, listed=n, skipped=n, downloaded=0, pruned=0, bytes=0)
    expect_ops("warm sync", requests, {"ListObjectsV2": pages(n)})
    expect_same_tree(env, "warm sync")


def change(env, n):
    rel = "small.txt"
    path = env.src / rel
    old = path.read_bytes()
    new = old.upper()
    expect(len(new) == len(old) and new != old, "test data: the change must keep the size")
    before, _ = env.aws_json("s3api", "head-object", "--bucket", BUCKET, "--key", PREFIX + rel)
    path.write_bytes(new)
    env.upload("s3", "cp", "--only-show-errors", str(path), f"s3://{BUCKET}/{PREFIX}{rel}")
    after, _ = env.aws_json("s3api", "head-object", "--bucket", BUCKET, "--key", PREFIX + rel)
    expect(before["ETag"] != after["ETag"], f"{rel}: the server kept the ETag after a change")
    summary, requests, _ = env.sync("same-size change")
    expect_summary("same-size change", summary, listed=n, skipped=n - 1, downloaded=1,
                   verified=1, unverified=0, pruned=0, bytes=len(new))
    expect_ops("same-size change", requests, {"ListObjectsV2": pages(n), "GetObject": 1})
    expect_each_fetched_once("same-size change", requests, {rel: len(new)})
    expect_same_tree(env, "same-size change")


def prune(env, n):
    rel = "dir/nested.bin"
    mine = env.target / "user-notes.txt"
    mine.write_text("mine, not from S3\n")
    env.aws("s3", "rm", "--only-show-errors", f"s3://{BUCKET}/{PREFIX}{rel}")
    (env.src / rel).unlink()
    summary, requests, _ = env.sync("delete + prune")
    expect_summary("delete + prune", summary, listed=n - 1, skipped=n - 1, downloaded=0,
                   pruned=1, bytes=0)
    expect_ops("delete + prune", requests, {"ListObjectsV2": pages(n - 1)})
    expect(not (env.target / rel).exists(), f"delete + prune: {rel} was not pruned")
    expect(mine.read_text() == "mine, not from S3\n", "delete + prune: the user's file was lost")
    expect_same_tree(env, "delete + prune", extra=["user-notes.txt"])


def delta(env, n):
    path = env.src / MULTIPART
    data = bytearray(path.read_bytes())
    data[AWS_PART + 1000] ^= 0xFF  # one byte of the second part
    path.write_bytes(bytes(data))
    env.upload("s3", "cp", "--only-show-errors", str(path), f"s3://{BUCKET}/{PREFIX}{MULTIPART}")
    summary, requests, _ = env.sync("one part changed")
    size = len(data)
    fetched, reused = (AWS_PART, size - AWS_PART) if env.args.delta else (size, 0)
    expect_summary("one part changed", summary, listed=n, skipped=n - 1, downloaded=1,
                   verified=1, unverified=0, pruned=0, bytes=fetched, reused_bytes=reused)
    got = reqlog.fetched_bytes(requests, PREFIX)
    expect(got == {MULTIPART: fetched},
           f"one part changed: GET body bytes per key {got}, expected {{{MULTIPART!r}: {fetched}}}")
    expect_same_tree(env, "one part changed", extra=["user-notes.txt"])
    say(f"one part changed: {fetched} bytes fetched, {reused} reused "
        f"({'delta' if env.args.delta else 'full download: the server lists no part checksums'})")


def state_verified(target):
    """Key -> how s3-seed recorded its verification (best effort, for the log)."""
    try:
        state = json.loads((target / ".s3-seed" / "state.json").read_text())
        return {e.get("key"): e.get("verified") for e in state.get("entries", {}).values()}
    except (OSError, ValueError, AttributeError):
        return {}


# ---------------------------------------------------------------- part checksums


CRT_HELPER = """
import base64, sys
from awscrt import checksums
data = sys.stdin.buffer.read()
if sys.argv[1] == "CRC32C":
    crc = checksums.crc32c(data).to_bytes(4, "big")
else:
    crc = checksums.crc64nvme(data).to_bytes(8, "big")
print(base64.b64encode(crc).decode())
"""


def checksum_b64(env, alg, data):
    """S3's base64 form of ALG over DATA (CRC32C, CRC64NVME through awscrt)."""
    if alg in CRT_ALGORITHMS:
        python = str(Path(env.args.crt_venv) / "bin" / "python")
        res = subprocess.run([python, "-c", CRT_HELPER, alg], input=data, capture_output=True,
                             check=True)
        return res.stdout.decode().strip()
    if alg == "CRC32":
        return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    if alg == "SHA256":
        return base64.b64encode(hashlib.sha256(data).digest()).decode()
    raise ValueError(alg)


def classify_object_checksum(env, alg, value, ctype, parts_b64, whole):
    """What the HEAD's checksum is: of the whole object, of the part checksums, or else."""
    if value is None:
        return "none"
    base, _, n = value.partition("-")
    if base == checksum_b64(env, alg, whole):
        kind = "full"
    elif base == checksum_b64(env, alg, b"".join(base64.b64decode(p) for p in parts_b64)):
        kind = "composite"
    else:
        kind = "other"
    return f"{kind}{'-N' if n else ''}/{ctype or 'no-type'}"


def probe_one(env, alg, key, data):
    parts = [data[i:i + AWS_PART] for i in range(0, len(data), AWS_PART)]
    want = [checksum_b64(env, alg, p) for p in parts]
    field = f"Checksum{alg}"
    head, err = env.aws_json("s3api", "head-object", "--bucket", BUCKET, "--key", key,
                             "--checksum-mode", "ENABLED")
    expect(head is not None, f"probe {alg}: head-object failed: {err}")
    obj = classify_object_checksum(env, alg, head.get(field), head.get("ChecksumType"), want, data)

    attrs, err = env.aws_json("s3api", "get-object-attributes", "--bucket", BUCKET, "--key", key,
                              "--object-attributes", "ObjectParts", "Checksum", "ObjectSize")
    if attrs is None:
        listed = f"error-{err}"
    elif not (attrs.get("ObjectParts") or {}).get("Parts"):
        total = (attrs.get("ObjectParts") or {}).get("TotalPartsCount")
        listed = f"count-only({total})" if total else "none"
    else:
        got = attrs["ObjectParts"]["Parts"]
        sizes = [p.get("Size") for p in got]
        expect(sizes == [len(p) for p in parts],
               f"probe {alg}: ObjectParts sizes {sizes}, uploaded {[len(p) for p in parts]}")
        sums = [p.get(field) for p in got]
        if all(s is None for s in sums):
            listed = "sizes"
        else:
            expect(sums == want, f"probe {alg}: ObjectParts checksums {sums}, computed {want}")
            listed = "sizes+checksums"

    part1, err = env.aws_json("s3api", "head-object", "--bucket", BUCKET, "--key", key,
                              "--part-number", "1", "--checksum-mode", "ENABLED")
    if part1 is None:
        head_part = f"error-{err}"
    elif part1.get("ContentLength") != len(parts[0]):
        head_part = "ignored"  # the whole object's length: partNumber not honoured
    else:
        head_part = "size"
        value = part1.get(field)
        if value is not None:
            head_part += "+checksum" if value.partition("-")[0] == want[0] else "+object-checksum"
        if part1.get("PartsCount") == len(parts):
            head_part += "+count"
    return f"{alg}: object={obj} parts={listed} head-part={head_part}"


def probe(env):
    rng = random.Random(23)
    results = []
    # What the CLI's defaults gave the published multipart object.
    head, _ = env.aws_json("s3api", "head-object", "--bucket", BUCKET, "--key", PREFIX + MULTIPART,
                           "--checksum-mode", "ENABLED")
    default_alg = next((a for a in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
                        if f"Checksum{a}" in head), None)
    say(f"probe: the aws CLI's default multipart upload carries "
        f"{default_alg or 'no checksum'} (HEAD with ChecksumMode=ENABLED)")
    probe_dir = env.work / "probe"
    probe_dir.mkdir(exist_ok=True)
    for alg in PROBE_ALGORITHMS:
        data = rng.randbytes(PROBE_SIZE)
        path = probe_dir / f"{alg.lower()}.bin"
        path.write_bytes(data)
        key = f"probe/{alg.lower()}.bin"
        env.upload("s3", "cp", "--only-show-errors", "--checksum-algorithm", alg, str(path),
                   f"s3://{BUCKET}/{key}", crt=alg in CRT_ALGORITHMS)
        result = probe_one(env, alg, key, data)
        say(f"probe {result}")
        results.append(result)
    # How s3-seed fares with those uploads (printed; files must be hash-equal).
    target = env.work / "probe-target"
    summary, _, stderr = env.sync("sync of the probe uploads", prefix="probe/", target=target)
    for name in sorted(p.name for p in probe_dir.iterdir()):
        expect((target / name).read_bytes() == (probe_dir / name).read_bytes(),
               f"probe sync: {name} differs")
    for line in stderr.splitlines():
        if "without verification" in line or "per-part" in line:
            say(f"s3-seed: {line.split(': ', 1)[-1].strip()}")
    verified = state_verified(target)
    say("probe: s3-seed recorded " + ", ".join(
        f"{k.split('/')[-1]}={v or 'unverified'}" for k, v in sorted(verified.items())))
    want = env.args.part_checksums.splitlines()
    expect(normalised(results) == normalised(want),
           "probe: the server now reports\n" + indent("\n".join(results))
           + "\n  where PART_CHECKSUMS in its server file (and the README) says\n"
           + indent("\n".join(want)) + "\n  update both if the server's behaviour changed")


def normalised(lines):
    return [" ".join(line.split()) for line in lines if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct", required=True, help="the server's endpoint (aws CLI)")
    parser.add_argument("--proxied", required=True, help="the counting proxy's endpoint (s3-seed)")
    parser.add_argument("--log", required=True, help="count-proxy.py's log file")
    parser.add_argument("--work", required=True)
    parser.add_argument("--bin", required=True, help="the s3-seed binary")
    parser.add_argument("--multipart-verified", type=int, required=True,
                        help="how many of the aws CLI's multipart objects must count as verified")
    parser.add_argument("--part-checksums", required=True,
                        help="the probe's expected result, one line per algorithm")
    parser.add_argument("--delta", type=int, choices=(0, 1), required=True,
                        help="1 when the server lists parts with checksums, so a changed "
                             "part is all a delta sync fetches")
    parser.add_argument("--crt-venv", required=True,
                        help="a virtualenv with awscli and awscrt (for CRC32C and CRC64NVME)")
    args = parser.parse_args()
    env = Env(args)
    try:
        publish(env)
        n = cold(env)
        warm(env, n)
        change(env, n)
        prune(env, n)
        delta(env, n - 1)
        probe(env)
    except Failure as err:
        print(f"  FAIL: {err}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Clients for bench/webhook/memory.sh (Python standard library only).

  clients.py review --shape SHAPE --object-mib M --out FILE
      Write an UPDATE AdmissionReview whose object and oldObject are each
      about M MiB of JSON, opted in to s3-seed, shaped as:
        containers   the bulk in app containers (name, image, env), which
                     the review never decodes: the largest realistic case
        annotations  the bulk in annotations, which the review decodes
        init         the bulk in other init containers, decoded too

  clients.py idle --port P --count N --pid PID --hold S --wait W --idle T
      Open N TLS connections to 127.0.0.1:P at once and let those whose
      handshake finishes sit idle. Reports, as one JSON line: handshakes done
      after S seconds, the server's VmRSS then, and after W more seconds how
      many the server closed (EOF), how many stayed open longer than the
      idle timeout T (+10 s of slack), and the longest one was open.

  clients.py reviews --port P --file FILE --count N --pid PID
      POST FILE N times at once (one connection each, whole body written
      before the answer is read, as curl --data-binary does). Reports the
      answers (patched, allowed, denied and why, other statuses) and the
      server's VmHWM.
"""

import argparse
import asyncio
import collections
import json
import ssl
import sys
import time

MIB = 1024 * 1024


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def statefulset(name):
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "annotations": {"s3-seed.io/source": "s3://bench-bucket/data/"},
        },
        "spec": {
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def grow(obj, shape, target):
    """Add bulk of the given shape until the object is about target bytes."""
    pod = obj["spec"]["template"]["spec"]
    i = 0
    step = 1000
    while len(json.dumps(obj, separators=(",", ":"))) < target:
        for _ in range(step):
            i += 1
            if shape == "containers":
                pod["containers"].append(
                    {
                        "name": f"c{i}",
                        "image": "registry.example/app:1",
                        "env": [{"name": "MODE", "value": "serve"}],
                    }
                )
            elif shape == "annotations":
                obj["metadata"]["annotations"][f"example.com/k{i}"] = "v"
            elif shape == "init":
                pod.setdefault("initContainers", []).append(
                    {"name": f"i{i}", "image": "registry.example/init:1", "args": ["a"]}
                )
            else:
                sys.exit(f"unknown shape {shape}")
    return obj


def review(args):
    target = int(args.object_mib * MIB)
    obj = grow(statefulset("big"), args.shape, target)
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "name": "big",
            "namespace": "bench",
            "operation": "UPDATE",
            "userInfo": {"username": "bench"},
            "object": obj,
            "oldObject": obj,
        },
    }
    text = json.dumps(body, separators=(",", ":"))
    with open(args.out, "w") as f:
        f.write(text)
    print(json.dumps({"file": args.out, "bytes": len(text), "shape": args.shape}))


def context(alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


async def idle(args):
    ctx = context(["http/1.1"])
    # One [opened, seconds open until the server closed it or None] each.
    conns = []
    failed = collections.Counter()
    streams = []

    async def one():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", args.port, ssl=ctx),
                timeout=args.hold + args.wait,
            )
        except Exception as e:
            failed[type(e).__name__] += 1
            return
        record = [time.monotonic(), None]
        conns.append(record)
        streams.append(writer)
        try:
            await reader.read(1)
        except Exception:
            pass
        record[1] = time.monotonic() - record[0]

    tasks = [asyncio.create_task(one()) for _ in range(args.count)]
    await asyncio.sleep(args.hold)
    held = {
        "handshakes_done": len(conns),
        "server_rss_kib": status_kib(args.pid, "VmRSS"),
    }
    await asyncio.wait(tasks, timeout=args.wait)
    end = time.monotonic()
    ages = [c[1] if c[1] is not None else end - c[0] for c in conns]
    # Open past the idle timeout, with slack for a loaded machine: never
    # closed, or closed too late.
    limit = args.idle + 10
    closed = [c[1] for c in conns if c[1] is not None]
    result = {
        "opened": args.count,
        **held,
        "handshakes_total": len(conns),
        "closed_by_server": len(closed),
        "still_open": len(conns) - len(closed),
        "open_past_idle_timeout": sum(1 for age in ages if age > limit),
        "longest_open_s": round(max(ages, default=0), 1),
        "not_served": args.count - len(conns),
        "errors": dict(failed),
        "server_rss_after_kib": status_kib(args.pid, "VmRSS"),
    }
    for t in tasks:
        t.cancel()
    for w in streams:
        w.close()
    print(json.dumps(result))


def classify(answer):
    """`200 patched`, `200 allowed`, `200 denied: <start of the message>`,
    or the status of any other answer."""
    if not answer:
        return "closed"
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode()
    if status != "200":
        return status
    response = json.loads(body).get("response", {})
    if response.get("allowed") and response.get("patch"):
        return "200 patched"
    if response.get("allowed"):
        return "200 allowed"
    return "200 denied: " + response.get("status", {}).get("message", "")[:40]


async def reviews(args):
    with open(args.file, "rb") as f:
        body = f.read()
    head = (
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    ctx = context(["http/1.1"])
    codes = collections.Counter()
    peak = 0

    async def one():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port, ssl=ctx)
            writer.write(head + body)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(-1), timeout=60)
            codes[classify(answer)] += 1
            writer.close()
        except Exception as e:
            codes[type(e).__name__] += 1

    async def watch():
        nonlocal peak
        while True:
            peak = max(peak, status_kib(args.pid, "VmRSS") or 0)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.count)))
    watcher.cancel()
    print(
        json.dumps(
            {
                "count": args.count,
                "body_bytes": len(body),
                "codes": dict(codes),
                "seconds": round(time.monotonic() - started, 2),
                "server_rss_peak_sampled_kib": peak,
                "server_hwm_kib": status_kib(args.pid, "VmHWM"),
            }
        )
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("review")
    r.add_argument("--shape", required=True)
    r.add_argument("--object-mib", type=float, required=True)
    r.add_argument("--out", required=True)
    i = sub.add_parser("idle")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--count", type=int, required=True)
    i.add_argument("--pid", type=int, required=True)
    i.add_argument("--hold", type=float, default=5)
    i.add_argument("--wait", type=float, default=30)
    i.add_argument("--idle", type=float, required=True, help="the server's idle timeout, seconds")
    v = sub.add_parser("reviews")
    v.add_argument("--port", type=int, required=True)
    v.add_argument("--file", required=True)
    v.add_argument("--count", type=int, required=True)
    v.add_argument("--pid", type=int, required=True)
    args = p.parse_args()
    if args.cmd == "review":
        review(args)
    elif args.cmd == "idle":
        asyncio.run(idle(args))
    else:
        asyncio.run(reviews(args))


if __name__ == "__main__":
    main()

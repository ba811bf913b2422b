#!/usr/bin/env python3
"""Validate Kubernetes manifests (multi-document YAML files or stdin) against
the official schemas, strictly (unknown fields are errors), for several
Kubernetes versions.

Only kinds from cert-manager.io may lack a schema (they are CRDs); any other
unknown kind is an error. Exits 1 on the first file that fails, naming the
document and the reason.

usage: validate-manifests.py [--self-test] FILE...
"""
import sys

import kubernetes_validate
import yaml

VERSIONS = ["1.30.0", "1.33.0"]
CRD_GROUPS = ("cert-manager.io/",)


def validate_docs(name, docs):
    count = 0
    for i, doc in enumerate(docs):
        if not doc:
            continue
        ident = f"{name}[{i}] {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                if str(doc.get("apiVersion", "")).startswith(CRD_GROUPS):
                    continue
                raise SystemExit(f"FAIL {ident}: no schema for {doc.get('apiVersion')} {doc.get('kind')}")
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                raise SystemExit(f"FAIL {ident} (k8s {version}) at {path}: {e.message}")
        count += 1
    return count


def self_test():
    """The validator must reject an unknown field and a wrong type."""
    bad = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {"replicas": "two"}},
    ]
    for doc in bad:
        try:
            validate_docs("self-test", [doc])
        except SystemExit:
            continue
        raise SystemExit(f"FAIL self-test: an invalid {doc['kind']} passed validation")
    print("ok   self-test: invalid manifests are rejected")


def main(args):
    if args and args[0] == "--self-test":
        self_test()
        args = args[1:]
    for path in args:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        n = validate_docs(path, list(yaml.safe_load_all(text)))
        if n == 0:
            raise SystemExit(f"FAIL {path}: no documents")
        print(f"ok   {path}: {n} documents valid for Kubernetes {', '.join(VERSIONS)}")


if __name__ == "__main__":
    main(sys.argv[1:])

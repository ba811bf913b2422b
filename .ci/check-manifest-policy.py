#!/usr/bin/env python3
"""Check the security and availability promises of a rendered s3-seed install.

usage: check-manifest-policy.py OVERLAY RENDERED.yaml [--rollout]

Beyond schema validity, this asserts what the README promises admins: no RBAC
for the webhook, no service-account token, a restricted pod, two replicas
spread and protected by a PDB, a NetworkPolicy that admits only the webhook
port, and a webhook configuration that fails closed only for opted-in
StatefulSets. The matchConditions are evaluated with a real CEL interpreter
against the objects the API server would send.

With --rollout (the overlay rendered with components/rollout), the rendering
must also hold the controller, with exactly its ClusterRole (statefulsets
get/list/watch/patch, secrets get, events create/patch) bound to its own
ServiceAccount only, a restricted single-replica pod, and a NetworkPolicy
that admits only its metrics port; without it, no controller and no RBAC.
"""
import sys

import celpy
import yaml


def fail(msg):
    raise SystemExit(f"FAIL policy: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)


def by_kind(docs, kind):
    return [d for d in docs if d and d.get("kind") == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


CONTROLLER = "s3-seed-controller"
CONTROLLER_RULES = [
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]
RBAC = ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]


def is_controller(doc):
    return doc.get("metadata", {}).get("name") == CONTROLLER


def check_pod(deploy):
    spec = deploy["spec"]
    check(spec["replicas"] >= 2, "the webhook must run at least 2 replicas")
    pod = spec["template"]["spec"]
    check(pod.get("automountServiceAccountToken") is False, "pods must not mount a token")
    check("podAntiAffinity" in pod.get("affinity", {}), "replicas must be spread by anti-affinity")
    check_restricted(pod)
    for c in pod["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        check(env.get("S3_SEED_IMAGE") == c["image"], "S3_SEED_IMAGE must equal the container image")


def check_restricted(pod):
    check(pod["securityContext"].get("runAsNonRoot") is True, "pod must run as non-root")
    for c in pod["containers"]:
        sc = c["securityContext"]
        check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
        check(sc.get("readOnlyRootFilesystem") is True, "root filesystem must be read-only")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
        check("runAsUser" not in sc, "no fixed UID (OpenShift assigns one)")
        check(c.get("readinessProbe") and c.get("livenessProbe"), "probes are required")
        check(c.get("resources", {}).get("limits", {}).get("memory"), "a memory limit is required")


def check_controller(docs):
    """The opt-in controller: its own account, exactly its permissions."""
    role = one(docs, "ClusterRole")
    check(is_controller(role), f"unexpected ClusterRole {role['metadata']['name']}")
    check(role["rules"] == CONTROLLER_RULES, f"controller ClusterRole rules differ: {role['rules']}")
    binding = one(docs, "ClusterRoleBinding")
    check(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CONTROLLER},
          "the binding must grant the controller ClusterRole")
    check(binding["subjects"] == [{"kind": "ServiceAccount", "name": CONTROLLER, "namespace": "s3-seed"}],
          f"the controller role must be bound to its own ServiceAccount only: {binding['subjects']}")
    for kind in ["Role", "RoleBinding"]:
        check(not by_kind(docs, kind), f"{kind} found: only the controller's ClusterRole is expected")
    check(one([d for d in docs if is_controller(d)], "ServiceAccount"), "the controller needs a ServiceAccount")
    deploy = one([d for d in docs if is_controller(d)], "Deployment")
    spec = deploy["spec"]
    check(spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate",
          "the controller runs one replica, replaced with Recreate (no leader election)")
    pod = spec["template"]["spec"]
    check(pod["serviceAccountName"] == CONTROLLER, "the controller pod must use its own ServiceAccount")
    check_restricted(pod)
    netpol = one([d for d in docs if is_controller(d)], "NetworkPolicy")
    ports = [p["port"] for rule in netpol["spec"]["ingress"] for p in rule.get("ports", [])]
    check(ports == [9090], f"the controller NetworkPolicy must admit only port 9090, admits {ports}")


def check_webhook(docs):
    mwc = one(docs, "MutatingWebhookConfiguration")
    check(len(mwc["webhooks"]) == 1, "one webhook expected")
    wh = mwc["webhooks"][0]
    check(wh["sideEffects"] == "None", "sideEffects must be None")
    check(wh["admissionReviewVersions"] == ["v1"], "v1 reviews only")
    check(wh["timeoutSeconds"] <= 5, "timeoutSeconds must be 5 or less")
    check(wh["reinvocationPolicy"] == "IfNeeded", "reinvocationPolicy must be IfNeeded")
    check(wh["failurePolicy"] == "Fail", "failurePolicy must be Fail")
    rule = wh["rules"][0]
    check(rule["resources"] == ["statefulsets"] and rule["apiGroups"] == ["apps"], "statefulsets only")
    check(sorted(rule["operations"]) == ["CREATE", "UPDATE"], "CREATE and UPDATE only")
    excluded = [e for e in wh["namespaceSelector"]["matchExpressions"]
                if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"][0]["values"]
    for ns in ["kube-system", "kube-node-lease", "s3-seed"]:
        check(ns in excluded, f"namespace {ns} must be excluded")
    global MATCH_CASES
    MATCH_CASES = check_match_conditions(wh["matchConditions"])
    return mwc


MATCH_CASES = 0


def check_match_conditions(conditions):
    env = celpy.Environment()
    programs = [env.program(env.compile(c["expression"])) for c in conditions]

    def matches(obj, old):
        op = "UPDATE" if old is not None else "CREATE"
        act = {
            "request": celpy.json_to_cel({"operation": op}),
            "object": celpy.json_to_cel(obj),
            "oldObject": celpy.json_to_cel(old),
        }
        return all(bool(p.evaluate(act)) for p in programs)

    def sts(annotations=None, template=None):
        meta = {"name": "a"}
        if annotations is not None:
            meta["annotations"] = annotations
        tmeta = {} if template is None else {"annotations": template}
        return {"metadata": meta, "spec": {"template": {"metadata": tmeta, "spec": {}}}}

    src = sts({"s3-seed.io/source": "s3://b/p/"})
    named = sts({"s3-seed.io/source.model": "s3://b/p/"})
    plain = sts({"other": "x"})
    bare = sts()
    revision = sts({"s3-seed.io/source-revision": "x", "s3-seed.io/sourcemodel": "y"})
    on_template = sts({"other": "x"}, {"s3-seed.io/source": "s3://b/p/"})
    hash_only = sts({"other": "x"}, {"s3-seed.io/config-hash": "0123"})
    no_template_meta = {"metadata": {"name": "a"}, "spec": {"template": {"spec": {}}}}
    cases = [
        ("CREATE opted in", src, None, True),
        ("CREATE opted in with a named source only", named, None, True),
        ("CREATE with other annotations", plain, None, False),
        ("CREATE without annotations", bare, None, False),
        ("CREATE with keys that only start like source", revision, None, False),
        ("CREATE with s3-seed.io keys on the pod template", on_template, None, True),
        ("CREATE with only the config hash on the pod template", hash_only, None, False),
        ("CREATE without template metadata", no_template_meta, None, False),
        ("UPDATE that opts in", src, bare, True),
        ("UPDATE that removes the source", bare, src, True),
        ("UPDATE that removes the last named source", bare, named, True),
        ("UPDATE of an unrelated object", plain, bare, False),
    ]
    for name, obj, old, want in cases:
        got = matches(obj, old)
        check(got == want, f"matchConditions on {name}: got {got}, want {want}")
    return len(cases)


def main(overlay, path, *flags):
    everything = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    rollout = "--rollout" in flags
    if rollout:
        check_controller(everything)
    else:
        check(not [d for d in everything if is_controller(d)], "controller objects without --rollout")
        for kind in RBAC:
            check(not by_kind(everything, kind), f"{kind} found: the webhook needs no API permissions")
    docs = [d for d in everything if not is_controller(d) and d.get("kind") not in RBAC]
    check(one(docs, "ServiceAccount").get("automountServiceAccountToken") is False,
          "ServiceAccount must not automount its token")
    check_pod(one(docs, "Deployment"))
    one(docs, "PodDisruptionBudget")
    netpol = one(docs, "NetworkPolicy")
    ports = [p["port"] for rule in netpol["spec"]["ingress"] for p in rule.get("ports", [])]
    check(ports == [8443], f"NetworkPolicy must admit only port 8443, admits {ports}")
    mwc = check_webhook(docs)
    annotations = mwc["metadata"].get("annotations", {})
    ca = mwc["webhooks"][0]["clientConfig"].get("caBundle")
    expected = {
        "base": lambda: True,
        "overlays/cert-manager": lambda: "cert-manager.io/inject-ca-from" in annotations,
        "overlays/openshift": lambda: annotations.get("service.beta.openshift.io/inject-cabundle") == "true",
        "overlays/self-managed": lambda: bool(ca) and by_kind(docs, "Secret"),
    }
    check(expected[overlay](), f"{overlay}: the serving certificate / caBundle wiring is missing")
    extra = " with the rollout controller" if rollout else ""
    print(f"ok   {overlay}{extra}: policy checks passed (incl. {MATCH_CASES} matchConditions cases)")


if __name__ == "__main__":
    main(*sys.argv[1:])

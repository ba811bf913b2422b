//! s3-seed installed with the `cert-manager` overlay on the test control
//! plane (tests/cluster/up.sh), with cert-manager's own controller and
//! cainjector running against it (`tests/common/cluster/cert_manager.rs`):
//! the overlay's Certificate becomes a Secret for the Service's DNS name, the
//! cainjector copies its CA into the registration's caBundle, and the API
//! server then calls the webhook over TLS with that certificate and trusts
//! it, and refuses to when the caBundle is another CA.
//!
//! Every assertion is on what the API server stored or answered, on what the
//! webhook served on its socket, or on its own counters.
//!
//! Needs the built control plane, the cert-manager build and root (a network
//! namespace): `bash tests/cluster/test.sh cluster_certmanager` (README,
//! Development).

mod common;

use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use common::cluster::cert_manager::{
    CERTIFICATE, Component, SECRET, ca_bundle, installed, pem_certificates, registration,
    set_ca_bundle, wait_for_ca_bundle,
};
use common::cluster::webhook::{NAMESPACE, SERVICE, WEBHOOK, generate_certs, probe_statefulset};
use common::cluster::{Namespace, kubectl};

/// The name the API server checks the served certificate against.
const HOST: &str = "s3-seed-webhook.s3-seed.svc";

/// The tests read counters and one swaps the caBundle: one at a time.
fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `openssl x509 -noout ARGS` of a PEM certificate.
fn x509(pem: &str, args: &[&str]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(pem.as_bytes())
        .expect("write to openssl");
    let out = child.wait_with_output().expect("wait for openssl");
    assert!(
        out.status.success(),
        "openssl x509 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The certificate the webhook serves on the Service's ClusterIP, with the
/// handshake verified by OpenSSL against `ca` and the host name [`HOST`]
/// (openssl fails the handshake otherwise).
fn served_certificate(ca: &std::path::Path, ip: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{ip}:443")])
        .args([
            "-servername",
            HOST,
            "-verify_hostname",
            HOST,
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Verify return code: 0 (ok)"),
        "openssl s_client to {ip}:443 as {HOST} did not verify:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pem_certificates(&stdout).swap_remove(0)
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh), the cert-manager build and root"]
fn the_certificate_becomes_a_secret_for_the_service_name_and_is_served() {
    let _alone = alone();
    let installed = installed();
    let issued = &installed.issued;
    let secret = kubectl(
        &["-n", NAMESPACE, "get", "secret", SECRET, "-o", "json"],
        None,
    )
    .json("get the Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(
        secret["metadata"]["annotations"]["cert-manager.io/certificate-name"], CERTIFICATE,
        "written by cert-manager for the overlay's Certificate"
    );

    let sans = x509(&issued.tls_crt, &["-ext", "subjectAltName"]);
    for name in [HOST, "s3-seed-webhook.s3-seed.svc.cluster.local"] {
        assert!(sans.contains(&format!("DNS:{name}")), "SAN {name}: {sans}");
    }
    // RFC 5280 4.1.2.4: a non-empty issuer; clients such as Java's refuse an
    // empty one, which a self-signed certificate without a subject has.
    let names = x509(
        &issued.tls_crt,
        &["-subject", "-issuer", "-nameopt", "RFC2253"],
    );
    assert!(
        names.contains(&format!("subject=CN={HOST}"))
            && names.contains(&format!("issuer=CN={HOST}")),
        "subject and issuer: {names}"
    );

    let webhook = &installed.webhook;
    let served = served_certificate(&webhook.root.join("certs/ca.crt"), &webhook.cluster_ip);
    assert_eq!(
        served.trim(),
        pem_certificates(&issued.tls_crt)[0].trim(),
        "the webhook serves the certificate from the Secret"
    );
    // curl (--cacert ca.crt, the Service's DNS name) checks the name too.
    assert_eq!(webhook.get("/healthz").trim(), "ok");
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh), the cert-manager build and root"]
fn the_cainjector_fills_the_ca_bundle_and_the_api_server_trusts_the_webhook() {
    let _alone = alone();
    let installed = installed();
    // installed() waited for the first caBundle and checked it is exactly
    // the Secret's ca.crt; it still holds it (whatever another test added).
    let bundle = pem_certificates(&ca_bundle());
    assert!(
        bundle.contains(&pem_certificates(&installed.issued.ca_crt)[0]),
        "the caBundle holds the Secret's ca.crt: {bundle:?}"
    );
    let mwc = registration();
    assert_eq!(
        mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{NAMESPACE}/{CERTIFICATE}")
    );
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["service"]["name"],
        SERVICE
    );

    let ns = Namespace::create("cert-manager", &[]);
    let before = installed.webhook.admissions();
    let mut sts = probe_statefulset();
    sts["metadata"]["namespace"] = ns.name.clone().into();
    ns.apply(&sts.to_string())
        .expect_ok("create an annotated StatefulSet");
    let stored = ns.get("statefulset", "probe");
    let init = &stored["spec"]["template"]["spec"]["initContainers"];
    assert_eq!(
        init[0]["name"], "s3-seed",
        "stored with the injected init container: {init}"
    );
    assert_eq!(
        stored["metadata"]["annotations"]["s3-seed.io/status"],
        "injected"
    );
    let after = installed.webhook.admissions();
    assert!(
        after > before,
        "the webhook admitted it: {before} -> {after}"
    );
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh), the cert-manager build and root"]
fn a_ca_bundle_of_another_ca_is_not_trusted_until_the_cainjector_adds_the_secrets_back() {
    let _alone = alone();
    let installed = installed();
    let cm = &installed.cert_manager;
    // Another CA, from `s3-seed certs`; with the cainjector stopped nothing
    // puts the right one back.
    let other = tempfile::tempdir().expect("a directory for another CA");
    generate_certs(other.path());
    let other_ca = std::fs::read_to_string(other.path().join("ca.crt")).expect("read ca.crt");
    cm.stop_component(Component::Cainjector);
    set_ca_bundle(&other_ca);

    let ns = Namespace::create("cert-manager-untrusted", &[]);
    let mut sts = probe_statefulset();
    sts["metadata"]["namespace"] = ns.name.clone().into();
    let err = cm.wait_for("the API server to stop trusting the webhook", || {
        let run = ns.apply(&sts.to_string());
        match run.ok {
            true => {
                let _ = ns.kubectl(&["delete", "statefulset", "probe"], None);
                Err("still created".into())
            }
            false => Ok(run.stderr),
        }
    });
    let refused = |err: &str| {
        assert!(
            err.contains(&format!(r#"failed calling webhook "{WEBHOOK}""#))
                && err.contains("x509: certificate signed by unknown authority"),
            "refused for the certificate, under failurePolicy Fail: {err}"
        );
    };
    refused(&err);
    let before = installed.webhook.admissions();
    refused(
        &ns.apply(&sts.to_string())
            .expect_err("create while the CA is another"),
    );
    let get = ns.kubectl(&["get", "statefulset", "probe"], None);
    assert!(
        !get.ok && get.stderr.contains("NotFound"),
        "nothing stored: {}",
        get.stderr
    );
    assert_eq!(
        installed.webhook.admissions(),
        before,
        "no request got past the TLS handshake"
    );

    // The cainjector, started again, adds the Secret's CA back (it merges:
    // the other CA stays), and the API server trusts the webhook again.
    cm.start_component(Component::Cainjector);
    let merged = wait_for_ca_bundle(cm, &installed.issued.ca_crt);
    assert_eq!(
        pem_certificates(&merged),
        [
            pem_certificates(&other_ca),
            pem_certificates(&installed.issued.ca_crt)
        ]
        .concat(),
        "the other CA, then the Secret's"
    );
    installed.webhook.wait_until_called();
    ns.apply(&sts.to_string())
        .expect_ok("create the StatefulSet once trusted again");
    // Back to the Secret's CA alone, for the other tests.
    set_ca_bundle(&installed.issued.ca_crt);
    assert_eq!(ca_bundle(), installed.issued.ca_crt);
}

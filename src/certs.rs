//! `s3-seed certs`: a private CA and a serving certificate for the webhook
//! Service, for clusters that use neither cert-manager nor OpenShift's
//! service CA.
//!
//! The API server reaches the webhook as `https://NAME.NS.svc`, so the leaf
//! carries that name (plus the short and fully qualified forms) as DNS SANs,
//! and the CA goes into the webhook configuration's `caBundle`. Keys are
//! written with mode 0600 and existing files are never overwritten unless
//! asked: losing a CA key silently would break every webhook call.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// Where and for whom to generate certificates.
#[derive(Debug, Clone)]
pub struct CertsConfig {
    pub service: String,
    pub namespace: String,
    pub out: PathBuf,
    pub days: u32,
    pub force: bool,
}

/// Why certificates could not be generated or written. Each message carries
/// its cause once (no `source()` repeats it).
#[derive(Debug, Error)]
pub enum CertsError {
    #[error("--service and --namespace must be DNS labels: {0}")]
    Name(crate::contract::ValueError),
    #[error("--days must be between 1 and 3650 (got {0})")]
    Days(u32),
    #[error("certificate generation failed: {0}")]
    Rcgen(rcgen::Error),
    #[error("{0} already exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl From<crate::contract::ValueError> for CertsError {
    fn from(e: crate::contract::ValueError) -> Self {
        Self::Name(e)
    }
}

impl From<rcgen::Error> for CertsError {
    fn from(e: rcgen::Error) -> Self {
        Self::Rcgen(e)
    }
}

/// PEM-encoded output of [`generate`].
#[derive(Debug, Clone)]
pub struct GeneratedCerts {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl GeneratedCerts {
    /// The CA certificate as the base64 `caBundle` of a webhook configuration.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_cert_pem)
    }
}

/// The DNS names under which the API server may call `service` in `namespace`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generate a CA and a serving certificate (ECDSA P-256) for `sans`, which
/// may be DNS names or IP addresses, valid for `days` days.
pub fn generate(sans: &[String], days: u32) -> Result<GeneratedCerts, CertsError> {
    if !(1..=3650).contains(&days) {
        return Err(CertsError::Days(days));
    }
    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    let not_after = not_before + Duration::days(i64::from(days));

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("s3-seed webhook CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
    leaf.distinguished_name = name(sans.first().map_or("s3-seed", String::as_str));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let cert = leaf.signed_by(&key, &Issuer::new(ca, &ca_key))?;

    Ok(GeneratedCerts {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(s: &str) -> Result<SanType, rcgen::Error> {
    Ok(match s.parse() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(s.to_owned().try_into()?),
    })
}

/// Generate and write `ca.crt`, `ca.key`, `tls.crt`, `tls.key` into
/// `config.out`; returns the base64 caBundle.
pub fn run(config: &CertsConfig) -> Result<String, CertsError> {
    crate::contract::parse_k8s_name(&config.service, false)?;
    crate::contract::parse_k8s_name(&config.namespace, false)?;
    let certs = generate(
        &service_dns_names(&config.service, &config.namespace),
        config.days,
    )?;
    let files = [
        ("ca.crt", &certs.ca_cert_pem, 0o644),
        ("ca.key", &certs.ca_key_pem, 0o600),
        ("tls.crt", &certs.cert_pem, 0o644),
        ("tls.key", &certs.key_pem, 0o600),
    ];
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |error| CertsError::Write { path, error }
    };
    fs::create_dir_all(&config.out).map_err(write_err(&config.out))?;
    if !config.force
        && let Some(existing) = files
            .iter()
            .map(|(f, _, _)| config.out.join(f))
            .find(|p| p.exists())
    {
        return Err(CertsError::Exists(existing));
    }
    for (file, pem, mode) in files {
        let path = config.out.join(file);
        write_file(&path, pem, mode).map_err(write_err(&path))?;
    }
    Ok(certs.ca_bundle())
}

fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use std::os::unix::fs::PermissionsExt;

    fn config(out: &Path, force: bool) -> CertsConfig {
        CertsConfig {
            service: "s3-seed-webhook".into(),
            namespace: "s3-seed".into(),
            out: out.to_owned(),
            days: 30,
            force,
        }
    }

    #[test]
    fn writes_a_chain_that_rustls_accepts_for_the_service_name() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = run(&config(dir.path(), false)).unwrap();
        let ca_pem = fs::read(dir.path().join("ca.crt")).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(bundle)
                .unwrap(),
            ca_pem
        );
        for key in ["ca.key", "tls.key"] {
            let mode = fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        // The leaf verifies against the CA for the in-cluster name, and not
        // for another one.
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::pem_slice_iter(&ca_pem)
            .next()
            .unwrap()
            .unwrap();
        roots.add(ca).unwrap();
        let leaf_pem = fs::read(dir.path().join("tls.crt")).unwrap();
        let leaf = CertificateDer::pem_slice_iter(&leaf_pem)
            .next()
            .unwrap()
            .unwrap();
        crate::cli::install_crypto_provider();
        let verifier = rustls::client::WebPkiServerVerifier::builder(roots.into())
            .build()
            .unwrap();
        let now = rustls::pki_types::UnixTime::now();
        let verify = |name: &str| {
            let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
            verifier.verify_server_cert(&leaf, &[], &name, &[], now)
        };
        use rustls::client::danger::ServerCertVerifier;
        assert!(verify("s3-seed-webhook.s3-seed.svc").is_ok());
        assert!(verify("s3-seed-webhook.s3-seed.svc.cluster.local").is_ok());
        assert!(verify("other.s3-seed.svc").is_err());
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        run(&config(dir.path(), false)).unwrap();
        let before = fs::read(dir.path().join("ca.key")).unwrap();
        let err = run(&config(dir.path(), false)).unwrap_err();
        assert!(matches!(err, CertsError::Exists(_)), "{err}");
        assert_eq!(fs::read(dir.path().join("ca.key")).unwrap(), before);
        run(&config(dir.path(), true)).unwrap();
        assert_ne!(fs::read(dir.path().join("ca.key")).unwrap(), before);
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), false);
        c.service = "Bad_Name".into();
        assert!(matches!(run(&c), Err(CertsError::Name(_))));
        assert!(matches!(
            generate(&["a".into()], 0),
            Err(CertsError::Days(0))
        ));
        let ip = generate(&["127.0.0.1".into(), "localhost".into()], 1);
        assert!(ip.is_ok());
    }
}

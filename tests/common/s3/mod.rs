//! An in-process S3 server for integration tests: s3s + s3s-fs on a real
//! socket, with server-side request counting and programmable faults.
//!
//! Three layers, each doing one job:
//! - [`store`] wraps `s3s_fs::FileSystem` behind the `s3s::S3` trait and fills
//!   the gaps that would make it unlike real S3 for a sync client (ETags in
//!   listings, `If-Match` on GET and HEAD, injected hostile listing entries,
//!   reported composite checksums, GetObjectAttributes for them);
//! - [`faults`] is the `s3s::access::S3Access` hook: s3s has already parsed the
//!   request there, so it names the operation exactly as AWS does
//!   (`ListObjectsV2`, `GetObject`, ...), and it decides which fault applies;
//! - [`http`] is the hyper service around `S3Service`: it records what was
//!   seen, counts GetObject body bytes, and cuts or stalls response bodies.
//!
//! [`S3Server::start_tls`] serves the same over HTTPS with a fresh
//! self-signed certificate ([`tls`]); the harness's own clients trust it.
//!
//! Seeding helpers go through the SDK (so s3s-fs records ETags and checksums as
//! for a real upload) but carry a marker header: they are never counted and
//! never faulted, so a test may seed in the middle of a run.
//!
//! # What s3s-fs 0.14.1 does (read from its source and checked by `tests/harness_s3.rs`)
//! - Checksums: CRC32, CRC32C, SHA1, SHA256 and CRC64NVME are accepted on
//!   PutObject (header or aws-chunked trailer), verified, and stored as
//!   full-object checksums. HeadObject returns them always (real S3 only with
//!   `ChecksumMode=ENABLED`); GetObject returns them only when the whole object
//!   is served (no checksum on a ranged GET smaller than the object). No
//!   `x-amz-checksum-type` header is sent.
//! - Multipart uploads store no checksum at all (UploadPart ignores them), and
//!   the ETag is the usual `md5(part md5s)-N`. Careful: CompleteMultipartUpload
//!   keeps the key's old internal record, so a multipart upload over a key that
//!   once had a single-PUT checksum still reports that stale checksum; seed
//!   multipart objects on fresh keys. Parts other than the last must be at
//!   least 5 MiB (`EntityTooSmall` otherwise).
//! - ListObjectsV2 from s3s-fs has no ETag; [`store`] adds it (and the checksum
//!   algorithm) from HeadObject so listings look like real S3's.
//! - GetObjectAttributes is not implemented (the `s3s::S3` default: 501
//!   NotImplemented); [`store`] answers it for keys armed with
//!   [`S3Server::report_composite`] or [`S3Server::list_parts`] (sizes only),
//!   two parts a page, with only the attributes asked for.
//! - GetObject and HeadObject ignore `If-Match` / `If-None-Match`; [`store`]
//!   answers a mismatching `If-Match` with 412 PreconditionFailed, ranged or not.
//! - ETags are the ones recorded at upload (no hashing on HEAD or LIST), as
//!   long as objects are written through S3 (the seeding helpers, or
//!   [`Fault::ReplaceAfter`]), never into the root directly.
//! - Keys map to `ROOT/BUCKET/KEY` through `Path::join` plus a virtual
//!   absolutize (probed with the SDK): `a//b`, `./c` and `f/../g` are stored and
//!   listed as `a/b`, `c` and `g`; `../x` and `../../x` land at `ROOT/x`, outside
//!   the bucket (PUT and GET succeed, never listed); `/abs` answers 500; `a\b`
//!   is an ordinary file name on Linux; `h/` with a body answers 400 (a `dir/`
//!   key is a directory); `a` while `a/b` exists answers 500, so a key cannot be
//!   both a file and a folder prefix. Hostile keys therefore reach a client only
//!   through [`S3Server::list_extra`], which injects listing entries.
//! - DeleteObject removes the data file only; `dir/` keys are directories.

mod faults;
mod http;
mod seed;
mod store;
mod tls;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Fault, Rule};
pub use seed::{Marking, composite_crc32};

/// Access key the server accepts (and [`S3Server::client`] uses).
pub const ACCESS_KEY: &str = "AKIAS3SEEDHARNESS";
/// Secret key the server accepts. Test-only; never a real credential.
pub const SECRET_KEY: &str = "harness-secret-key-not-a-real-one";
/// Region the clients sign for.
pub const REGION: &str = "us-east-1";
/// Bucket created at start.
pub const BUCKET: &str = "seed-bucket";

/// What the server did so far, counted on the server side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests per operation, named as AWS names them (`GetObject`, ...).
    /// Requests that failed authentication are counted as `Unclassified`.
    pub ops: BTreeMap<String, u64>,
    /// GetObject requests that carried a `Range` header.
    pub ranged_gets: u64,
    /// Response body bytes actually sent for GetObject (a cut body counts what went out).
    pub get_bytes: u64,
    /// Faults that fired.
    pub faults: u64,
}

impl Counts {
    /// Requests seen for one operation.
    pub fn op(&self, name: &str) -> u64 {
        self.ops.get(name).copied().unwrap_or(0)
    }

    /// Requests seen in total.
    pub fn total(&self) -> u64 {
        self.ops.values().sum()
    }
}

/// One request as the server saw it (seeding traffic excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Operation name, e.g. `GetObject`.
    pub op: String,
    /// Object key, if the request addressed one.
    pub key: Option<String>,
    /// The `Range` header, verbatim.
    pub range: Option<String>,
    /// The `If-Match` header, verbatim.
    pub if_match: Option<String>,
    /// Response status.
    pub status: u16,
    /// The fault that fired on this request, if any (its `Debug` form).
    pub fault: Option<String>,
}

/// A checksum the store reports for a key in place of what s3s-fs stored.
#[derive(Debug, Clone)]
pub(crate) struct Reported {
    /// `None`: the upload's checksums stay what s3s-fs stored (none for a
    /// multipart upload); only the parts are listed.
    crc32: Option<String>,
    checksum_type: Option<String>,
    /// (size, base64 CRC32) of each upload part, served by GetObjectAttributes.
    parts: Option<Vec<(u64, Option<String>)>>,
}

/// State shared by the three layers.
pub(crate) struct Shared {
    fs: Arc<FileSystem>,
    plan: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    get_bytes: AtomicU64,
    extra: Mutex<Vec<(String, u64)>>,
    reported: Mutex<BTreeMap<String, Reported>>,
    /// Parts per GetObjectAttributes page (see [`S3Server::set_attribute_page`]).
    attribute_page: AtomicUsize,
    /// The only access key and secret accepted ([`S3Server::rotate_keys`]).
    keys: Mutex<(String, String)>,
}

/// Signatures are checked against [`Shared::keys`], which a test may change.
struct Keys(Arc<Shared>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<SecretKey> {
        let keys = lock(&self.0.keys);
        if keys.0 == access_key {
            Ok(SecretKey::from(keys.1.clone()))
        } else {
            Err(s3s::s3_error!(InvalidAccessKeyId))
        }
    }
}

/// Lock a mutex, ignoring poisoning (a panicking test thread must not hide counts).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running in-process S3 server; shut down when dropped.
pub struct S3Server {
    endpoint: String,
    /// The only keys the server accepts.
    keys: (String, String),
    ca_pem: Option<String>,
    root: TempDir,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl S3Server {
    /// Start on 127.0.0.1:0 with an empty bucket [`BUCKET`], on the current runtime.
    ///
    /// The server is a task of the test's runtime: a test that runs the
    /// `s3-seed` binary against it must wait with `tokio::process` (or use a
    /// multi-thread runtime), never block a current-thread runtime on
    /// `std::process::Command::output`, or the server cannot answer.
    pub async fn start() -> S3Server {
        S3Server::start_with(None, ACCESS_KEY, SECRET_KEY).await
    }

    /// [`Self::start`], accepting only this access key and secret (for tests
    /// of several stores, each with its own keys).
    pub async fn start_with_keys(access_key: &str, secret_key: &str) -> S3Server {
        S3Server::start_with(None, access_key, secret_key).await
    }

    /// [`Self::start`], serving HTTPS with a new self-signed certificate for
    /// 127.0.0.1 ([`Self::ca_pem`]). The harness's clients trust it; any other
    /// client must be given the PEM (e.g. through `AWS_CA_BUNDLE`).
    pub async fn start_tls() -> S3Server {
        let (acceptor, pem) = tls::self_signed();
        let mut server = S3Server::start_with(Some(acceptor), ACCESS_KEY, SECRET_KEY).await;
        server.endpoint = server.endpoint.replacen("http:", "https:", 1);
        server.ca_pem = Some(pem);
        server
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        access_key: &str,
        secret_key: &str,
    ) -> S3Server {
        let root = tempfile::tempdir().expect("create a temp dir for the s3s-fs root");
        std::fs::create_dir(root.path().join(BUCKET)).expect("create the bucket directory");
        let fs = Arc::new(FileSystem::new(root.path()).expect("open the s3s-fs root"));
        let shared = Arc::new(Shared {
            fs: Arc::clone(&fs),
            plan: Mutex::default(),
            seen: Mutex::default(),
            get_bytes: AtomicU64::new(0),
            extra: Mutex::default(),
            reported: Mutex::default(),
            attribute_page: AtomicUsize::new(store::ATTRIBUTE_PAGE),
            keys: Mutex::new((access_key.to_owned(), secret_key.to_owned())),
        });
        let mut builder = S3ServiceBuilder::new(store::Store::new(Arc::clone(&shared)));
        builder.set_auth(Keys(Arc::clone(&shared)));
        builder.set_access(faults::Gate::new(Arc::clone(&shared)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("local addr of a bound listener")
            .port();
        let service = builder.build();
        let task = tokio::spawn(http::serve(listener, service, Arc::clone(&shared), tls));
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            keys: (access_key.to_owned(), secret_key.to_owned()),
            ca_pem: None,
            root,
            shared,
            task,
        }
    }

    /// The access key and secret the server accepts.
    pub fn keys(&self) -> (&str, &str) {
        (&self.keys.0, &self.keys.1)
    }

    /// Accept these keys from now on, and no longer the old ones (as when
    /// an access key is rotated and the old one revoked).
    pub fn rotate_keys(&mut self, access_key: &str, secret_key: &str) {
        self.keys = (access_key.to_owned(), secret_key.to_owned());
        *lock(&self.shared.keys) = self.keys.clone();
    }

    /// The certificate (PEM) an HTTPS server presents; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// `http://127.0.0.1:PORT` (`https://` after [`Self::start_tls`]).
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The bucket every helper works on.
    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    /// `s3://BUCKET/PREFIX` for a sync source.
    pub fn uri(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The s3s-fs root (objects live under `root/BUCKET/KEY`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Env vars a child process needs to reach this server with the AWS chain.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.keys.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.keys.1.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// SDK config for this server (static keys, path style, latest behaviour),
    /// for tests that tune retries or timeouts before building a client.
    pub fn config(&self) -> aws_sdk_s3::config::Builder {
        let mut config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                &self.keys.0,
                &self.keys.1,
                None,
                None,
                "harness",
            ))
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .force_path_style(true);
        if let Some(pem) = &self.ca_pem {
            config = config.http_client(tls::trusting(pem));
        }
        config
    }

    /// A client with SDK defaults (standard retries) pointed at this server.
    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.config().build())
    }

    /// Snapshot of the counters.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            get_bytes: self.shared.get_bytes.load(Ordering::SeqCst),
            ..Counts::default()
        };
        for seen in lock(&self.shared.seen).iter() {
            *counts.ops.entry(seen.op.clone()).or_default() += 1;
            counts.ranged_gets += u64::from(seen.op == "GetObject" && seen.range.is_some());
            counts.faults += u64::from(seen.fault.is_some());
        }
        counts
    }

    /// Every request seen since start or the last [`Self::reset_counts`], in order.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Waits until no GET body bytes have been sent for 200 ms (at most 5 s):
    /// after a client is killed, the server may still be writing the bodies
    /// of its dead connections, which would count against the next run.
    pub async fn settle(&self) {
        let sent = || self.shared.get_bytes.load(Ordering::SeqCst);
        let mut last = sent();
        let mut quiet = 0;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = sent();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
            if quiet == 4 {
                return;
            }
        }
    }

    /// Parts per GetObjectAttributes page from now on (S3's own is 1,000; the
    /// default of [`store::ATTRIBUTE_PAGE`] makes clients page).
    pub fn set_attribute_page(&self, parts: usize) {
        self.shared
            .attribute_page
            .store(parts.max(1), Ordering::SeqCst);
    }

    /// Zero the counters and the request log.
    pub fn reset_counts(&self) {
        lock(&self.shared.seen).clear();
        self.shared.get_bytes.store(0, Ordering::SeqCst);
    }

    /// Arm a fault rule. Rules are tried in the order armed; the first that
    /// matches a request (and has uses left) fires, once per request.
    pub fn inject(&self, rule: Rule) {
        lock(&self.shared.plan).push(rule);
    }

    /// Disarm every rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.plan).clear();
    }

    /// Uses left across all armed rules (0 once every rule has fired fully).
    pub fn faults_pending(&self) -> u64 {
        lock(&self.shared.plan)
            .iter()
            .map(|r| u64::from(r.remaining))
            .sum()
    }

    /// Add an entry to the first page of every ListObjectsV2 answer whose
    /// prefix it matches, for keys a filesystem cannot hold (`../x`, `/abs`,
    /// `a//b`, a key that is also a folder prefix). GET on it answers NoSuchKey
    /// or 500, as s3s-fs maps the key.
    pub fn list_extra(&self, key: &str, size: u64) {
        lock(&self.shared.extra).push((key.to_owned(), size));
    }

    /// Forget every entry added with [`Self::list_extra`].
    pub fn clear_list_extra(&self) {
        lock(&self.shared.extra).clear();
    }

    /// Report `crc32` (base64, verbatim) as the CRC32 of `key` in HeadObject,
    /// whole-object GetObject and listings, with `x-amz-checksum-type` set to
    /// `checksum_type` or absent, and no other checksum. Plays a store that
    /// reports a composite checksum for a multipart upload: real S3 sends
    /// `value-N` with `COMPOSITE`, moto 5 the bare value with no type (see
    /// [`composite_crc32`]). The ETag and the bytes are untouched, and
    /// GetObjectAttributes still answers 501 for the key (a store that cannot
    /// list parts); [`S3Server::report_composite`] plays one that can.
    pub fn report_crc32(&self, key: &str, crc32: &str, checksum_type: Option<&str>) {
        let reported = Reported {
            crc32: Some(crc32.to_owned()),
            checksum_type: checksum_type.map(str::to_owned),
            parts: None,
        };
        lock(&self.shared.reported).insert(key.to_owned(), reported);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

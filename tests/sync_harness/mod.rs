//! A small in-process S3 for the sync tests: s3s-fs behind a wrapper that
//! counts requests and bytes on the server side, enforces `If-Match` on
//! GET/HEAD (s3s-fs does not), lists ETags (s3s-fs leaves them out), can add
//! hostile keys to listings, swap an object during a ranged download, and
//! inject faults (5xx, throttling, a cut or stalled body, corrupted bytes).
//!
//! (To be replaced by the shared `tests/common/s3.rs` harness.)
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use md5::Digest as _;
use s3_seed::spec::S3Uri;
use s3_seed::sync::SyncConfig;
use s3s::dto::{
    ETag, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, Object, StreamingBlob,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

pub const BUCKET: &str = "seed-bucket";
pub const ACCESS_KEY: &str = "AKIATESTSEED";
pub const SECRET_KEY: &str = "test-secret-key-not-real";

/// A fault applied to the next GET(s).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this S3 error (`SlowDown` is 503, `InternalError` 500).
    Error(S3ErrorCode),
    /// Send this many body bytes, then break the connection.
    CutAfter(usize),
    /// Send this many body bytes, then nothing, forever.
    StallAfter(usize),
    /// Flip one byte of the body.
    Corrupt,
}

/// (mtime, size, inode) of an object file.
type FileStamp = (std::time::SystemTime, u64, u64);

/// Counters and knobs shared between a test and its server.
#[derive(Debug, Default)]
pub struct Shared {
    pub root: PathBuf,
    pub lists: AtomicU64,
    pub gets: AtomicU64,
    pub heads: AtomicU64,
    /// Body bytes the server was asked to send for GETs.
    pub get_bytes: AtomicU64,
    /// Applied to the next GETs, one each, in order.
    pub faults: Mutex<VecDeque<Fault>>,
    /// Applied to every GET of this key.
    pub always: Mutex<HashMap<String, Fault>>,
    /// Extra (key, size) entries appended to listings.
    pub extra_keys: Mutex<Vec<(String, i64)>>,
    /// After the first ranged GET of this key, replace it with these bytes.
    pub swap: Mutex<Option<(String, Vec<u8>)>>,
    /// Sleep before answering each GET.
    pub get_delay: Mutex<Duration>,
    /// MD5 ETags by key, valid while the file's (mtime, size, inode) is unchanged.
    etags: Mutex<HashMap<String, (FileStamp, String)>>,
}

impl Shared {
    pub fn reset_counts(&self) {
        for c in [&self.lists, &self.gets, &self.heads, &self.get_bytes] {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.lists.load(Ordering::SeqCst),
            self.gets.load(Ordering::SeqCst),
            self.heads.load(Ordering::SeqCst),
        )
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// The MD5 ETag of an object as stored (what s3s-fs serves for single PUTs).
    fn etag(&self, key: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(self.object_path(key)).ok()?;
        let stamp = (meta.modified().ok()?, meta.len(), meta.ino());
        if let Some((s, etag)) = self.etags.lock().unwrap().get(key)
            && *s == stamp
        {
            return Some(etag.clone());
        }
        let data = std::fs::read(self.object_path(key)).ok()?;
        let etag = hex(&md5::Md5::digest(&data));
        self.etags
            .lock()
            .unwrap()
            .insert(key.to_owned(), (stamp, etag.clone()));
        Some(etag)
    }

    /// Replace an object's bytes behind s3s-fs's back (and drop its sidecar
    /// record so the new MD5 is served).
    pub fn overwrite(&self, key: &str, data: &[u8]) {
        use base64::Engine as _;
        // atomic like S3: a new inode, so bodies already streaming keep the old bytes
        let path = self.object_path(key);
        let tmp = path.with_extension("swap-tmp");
        std::fs::write(&tmp, data).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        for entry in std::fs::read_dir(&self.root).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(&format!(".object-{encoded}.")) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Wrapper {
    inner: s3s_fs::FileSystem,
    shared: Arc<Shared>,
}

fn check_if_match(
    shared: &Shared,
    key: &str,
    cond: Option<&s3s::dto::ETagCondition>,
) -> S3Result<()> {
    let Some(want) = cond.and_then(|c| c.as_etag()) else {
        return Ok(());
    };
    match shared.etag(key) {
        Some(cur) if cur == want.value() => Ok(()),
        Some(_) => Err(s3_error!(PreconditionFailed)),
        None => Err(s3_error!(NoSuchKey)),
    }
}

#[async_trait::async_trait]
impl S3 for Wrapper {
    async fn list_objects_v2(
        &self,
        req: S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<s3s::dto::ListObjectsV2Output>> {
        self.shared.lists.fetch_add(1, Ordering::SeqCst);
        let mut resp = self.inner.list_objects_v2(req).await?;
        let contents = resp.output.contents.get_or_insert_with(Vec::new);
        for obj in contents.iter_mut() {
            let key = obj.key.clone().unwrap_or_default();
            obj.e_tag = self.shared.etag(&key).map(ETag::Strong);
        }
        for (key, size) in self.shared.extra_keys.lock().unwrap().iter() {
            contents.push(Object {
                key: Some(key.clone()),
                size: Some(*size),
                e_tag: Some(ETag::Strong("0123456789abcdef0123456789abcdef".into())),
                ..Default::default()
            });
        }
        Ok(resp)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.shared.heads.fetch_add(1, Ordering::SeqCst);
        check_if_match(&self.shared, &req.input.key, req.input.if_match.as_ref())?;
        self.inner.head_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.shared.gets.fetch_add(1, Ordering::SeqCst);
        let delay = *self.shared.get_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let key = req.input.key.clone();
        check_if_match(&self.shared, &key, req.input.if_match.as_ref())?;
        let ranged = req.input.range.is_some();
        let fault = self.shared.faults.lock().unwrap().pop_front();
        let fault = fault.or_else(|| self.shared.always.lock().unwrap().get(&key).cloned());
        if let Some(Fault::Error(code)) = &fault {
            return Err(S3Error::new(code.clone()));
        }
        let mut resp = self.inner.get_object(req).await?;
        let len = resp.output.content_length.unwrap_or(0);
        self.shared
            .get_bytes
            .fetch_add(len as u64, Ordering::SeqCst);
        if let Some(fault) = fault {
            let body = resp.output.body.take().expect("s3s-fs always sends a body");
            resp.output.body = Some(StreamingBlob::wrap(Faulty::new(body, fault)));
        }
        if ranged {
            let swap = self.shared.swap.lock().unwrap().take_if(|(k, _)| *k == key);
            if let Some((k, data)) = swap {
                self.shared.overwrite(&k, &data);
            }
        }
        Ok(resp)
    }

    async fn put_object(
        &self,
        req: S3Request<s3s::dto::PutObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::PutObjectOutput>> {
        self.inner.put_object(req).await
    }
}

/// A body that misbehaves as told.
struct Faulty {
    inner: StreamingBlob,
    fault: Fault,
    left: usize,
    done: bool,
}

impl Faulty {
    fn new(inner: StreamingBlob, fault: Fault) -> Self {
        let left = match fault {
            Fault::CutAfter(n) | Fault::StallAfter(n) => n,
            _ => usize::MAX,
        };
        Self {
            inner,
            fault,
            left,
            done: false,
        }
    }
}

impl futures_core::Stream for Faulty {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.left == 0 {
            return match self.fault {
                Fault::StallAfter(_) => Poll::Pending,
                _ => {
                    self.done = true;
                    Poll::Ready(Some(Err(io::Error::other("injected connection cut"))))
                }
            };
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let mut chunk = chunk.slice(..chunk.len().min(self.left));
                if matches!(self.fault, Fault::Corrupt) && !chunk.is_empty() {
                    let mut v = chunk.to_vec();
                    v[0] ^= 0xff;
                    chunk = Bytes::from(v);
                    self.fault = Fault::CutAfter(usize::MAX); // only once
                }
                self.left -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A running server.
pub struct Server {
    pub endpoint: String,
    pub shared: Arc<Shared>,
    _root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Serve HTTPS with a fresh self-signed certificate for 127.0.0.1;
    /// returns the server and the certificate (PEM) to trust.
    pub async fn start_tls() -> (Self, String) {
        s3_seed::cli::install_crypto_provider();
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (Self::start_with(Some(acceptor)).await, ck.cert.pem())
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let shared = Arc::new(Shared {
            root: root.path().to_owned(),
            ..Default::default()
        });
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(Wrapper {
            inner: fs,
            shared: Arc::clone(&shared),
        });
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let (svc, tls) = (service.clone(), tls.clone());
                tokio::spawn(async move {
                    let conn = ConnBuilder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => conn.serve_connection(TokioIo::new(sock), svc).await,
                        Some(tls) => match tls.accept(sock).await {
                            Ok(stream) => conn.serve_connection(TokioIo::new(stream), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Self {
            endpoint,
            shared,
            _root: root,
            task,
        }
    }

    /// A client for this server, configured like `build_client` (no SDK retries).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf =
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&self.endpoint)
                .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
                .force_path_style(true)
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .stalled_stream_protection(
                    aws_sdk_s3::config::StalledStreamProtectionConfig::disabled(),
                )
                .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Upload through the SDK (which adds a CRC32 checksum).
    pub async fn put(&self, key: &str, data: &[u8]) {
        self.client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(data.to_vec().into())
            .send()
            .await
            .unwrap();
    }

    /// Write an object without any checksum (only its MD5 ETag can be checked).
    pub fn put_raw(&self, key: &str, data: &[u8]) {
        let path = self.shared.object_path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    pub fn delete(&self, key: &str) {
        std::fs::remove_file(self.shared.object_path(key)).unwrap();
    }

    /// Environment for running the `s3-seed` binary against this server.
    pub fn env(&self, prefix: &str, target: &Path) -> Vec<(String, String)> {
        [
            ("S3_SEED_SOURCE", format!("s3://{BUCKET}/{prefix}")),
            ("S3_SEED_TARGET", target.display().to_string()),
            ("S3_SEED_ENDPOINT", self.endpoint.clone()),
            ("S3_SEED_PATH_STYLE", "true".into()),
            ("S3_SEED_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A sync configuration for `prefix` into `target` with small test sizes.
pub fn config(prefix: &str, target: &Path) -> SyncConfig {
    let source: S3Uri = format!("s3://{BUCKET}/{prefix}").parse().unwrap();
    let mut cfg = SyncConfig::new(source, target.to_owned());
    cfg.part_size = 256 * 1024;
    cfg.concurrency = 4;
    cfg.retry_base = Duration::from_millis(10);
    cfg.stall_timeout = Duration::from_secs(2);
    cfg
}

/// Deterministic pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every regular file under `dir` (relative path → bytes), skipping `.s3-seed`.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ty = entry.file_type().unwrap();
            if rel == ".s3-seed" {
                continue;
            } else if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

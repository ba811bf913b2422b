//! One poll: list a StatefulSet's sources the way its init container would,
//! and name what they hold, together ([`super::revision`]).
//!
//! Same source, filters, endpoint, region and addressing as the injected
//! sync (the admin's `--default-*` filling what the annotations leave out),
//! through the same [`crate::sync::source::select`]; each source with its
//! own connection (its `.NAME` keys over the shared ones), credentials from
//! its `s3-seed.io/credentials-secret[.NAME]`, read from the StatefulSet's
//! namespace, or this process's AWS default chain when there is none. So a
//! poll is one ListObjectsV2 per 1,000 keys of each source, and a GET of a
//! Secret only when its credentials are not in the [`SecretCache`] (read
//! less than `--secret-refresh-secs` ago), or just failed.
//!
//! SDK clients are cached by their settings (credentials included), so a
//! poll reuses connections and never asks the default chain for a region
//! again; the cache is dropped whole when it holds [`MAX_CLIENTS`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::config::{ControllerConfig, READ_TIMEOUT};
use super::error::PollError;
use super::revision::{self, Fingerprint, Revision};
use super::secrets::{SecretCache, SecretRef};
use crate::contract::{
    self, CREDENTIALS_SECRET, Connection, Endpoint, Key, SeedSpec, SourceName, env,
};
use crate::s3::{self, ClientConfig, Retry, StaticCredentials};
use crate::sync::keys::Wanted;
use crate::sync::source::{SourceSpec, select};

/// Distinct client settings kept at most.
const MAX_CLIENTS: usize = 64;
/// Retries of one poll; a source that is still failing after them is
/// reported and polled again at the next interval.
const RETRY_BUDGET: u32 = 4;
const MAX_ATTEMPTS: u32 = 3;
const RETRY_BASE: Duration = Duration::from_millis(200);

/// What one successful poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub revision: Revision,
    pub fingerprint: Fingerprint,
    /// Objects selected.
    pub objects: usize,
}

/// The settings a client is built from; equal settings share a client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientKey {
    endpoint: Option<String>,
    region: Option<String>,
    path_style: bool,
    credentials: Option<StaticCredentials>,
}

/// Lists sources; holds the Kubernetes client (for Secrets) and the SDK clients.
pub struct Poller {
    kube: Client,
    cfg: ControllerConfig,
    clients: Mutex<Vec<(ClientKey, aws_sdk_s3::Client)>>,
    secrets: Mutex<SecretCache>,
}

impl Poller {
    pub fn new(kube: Client, cfg: ControllerConfig) -> Self {
        Self {
            secrets: Mutex::new(SecretCache::new(cfg.secret_ttl)),
            kube,
            cfg,
            clients: Mutex::new(Vec::new()),
        }
    }

    /// Poll every source of `spec`, a StatefulSet of `namespace`: one
    /// revision over all of them. Credentials come from the cache when they
    /// can; a poll that failed with cached ones is tried once more with each
    /// Secret read again (rotated credentials fail only that first try).
    pub async fn poll(&self, namespace: &str, spec: &SeedSpec) -> Result<Polled, PollError> {
        let mut cached = Vec::new();
        let first = self.poll_with(namespace, spec, Some(&mut cached)).await;
        if first.is_ok() || cached.is_empty() {
            return first;
        }
        {
            let mut secrets = self.secrets();
            for secret in &cached {
                secrets.remove(secret);
            }
        }
        tracing::debug!(
            namespace,
            "poll failed with cached credentials; reading the Secrets again"
        );
        self.poll_with(namespace, spec, None).await
    }

    /// One poll. With `cached`, credentials are taken from the cache when
    /// there, and the Secrets so taken are pushed to it; without, every
    /// Secret is read. The sources are listed concurrently.
    async fn poll_with(
        &self,
        namespace: &str,
        spec: &SeedSpec,
        mut cached: Option<&mut Vec<SecretRef>>,
    ) -> Result<Polled, PollError> {
        let mut secrets: BTreeMap<String, StaticCredentials> = BTreeMap::new();
        let mut listings = Vec::new();
        for (name, source) in &spec.sources {
            let connection = source.connection.or(&spec.connection);
            let credentials = match connection.credentials_secret.clone() {
                Some(secret) => {
                    let key = Key::new(
                        CREDENTIALS_SECRET,
                        name.as_ref()
                            .filter(|_| source.connection.credentials_secret.is_some()),
                    );
                    if !secrets.contains_key(&secret) {
                        let read = self
                            .credentials(namespace, &secret, &key, cached.as_deref_mut())
                            .await;
                        let read = read.map_err(|e| in_source(name, e))?;
                        secrets.insert(secret.clone(), read);
                    }
                    secrets.get(&secret).cloned()
                }
                None => None,
            };
            listings.push(async move {
                let wanted = self.list(source, connection, credentials).await;
                wanted
                    .map(|w| (name.as_ref(), w))
                    .map_err(|e| in_source(name, e))
            });
        }
        let selections = try_join_all(listings).await?;
        let (revision, fingerprint) =
            revision::of(selections.iter().map(|(name, w)| (*name, w.as_slice())));
        Ok(Polled {
            revision,
            fingerprint,
            objects: selections.iter().map(|(_, w)| w.len()).sum(),
        })
    }

    /// What one source selects, listed with its connection settings.
    async fn list(
        &self,
        source: &contract::SourceSpec,
        connection: Connection,
        credentials: Option<StaticCredentials>,
    ) -> Result<Vec<Wanted>, PollError> {
        let defaults = &self.cfg.defaults;
        let endpoint = connection.endpoint.or_else(|| defaults.endpoint.clone());
        let key = ClientKey {
            endpoint: endpoint.as_ref().map(|e| e.as_str().to_owned()),
            region: connection.region.or_else(|| defaults.region.clone()),
            path_style: connection
                .path_style
                .or(defaults.path_style)
                .unwrap_or(false),
            credentials,
        };
        let client = self.client(key, endpoint).await?;
        let selector = SourceSpec {
            uri: source.source.clone(),
            include: source.include.clone(),
            exclude: source.exclude.clone(),
        };
        let retry = Retry::new(RETRY_BUDGET, MAX_ATTEMPTS, RETRY_BASE);
        Ok(select(&client, &selector, &retry).await?.wanted)
    }

    /// The credentials in Secret `name`: from the cache when `cached` is
    /// given and holds them (the Secret is then pushed to `cached`), else
    /// read, and cached.
    async fn credentials(
        &self,
        namespace: &str,
        name: &str,
        key: &Key,
        cached: Option<&mut Vec<SecretRef>>,
    ) -> Result<StaticCredentials, PollError> {
        let secret = (namespace.to_owned(), name.to_owned());
        if let Some(cached) = cached {
            let found = self.secrets().get(&secret, Instant::now());
            if let Some(found) = found {
                cached.push(secret);
                return Ok(found);
            }
        }
        let read = self.read_secret(namespace, name, key).await?;
        self.secrets().insert(secret, read.clone(), Instant::now());
        Ok(read)
    }

    fn secrets(&self) -> MutexGuard<'_, SecretCache> {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys of Secret `name`, as the injected container reads them.
    async fn read_secret(
        &self,
        namespace: &str,
        name: &str,
        key: &Key,
    ) -> Result<StaticCredentials, PollError> {
        let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|error| PollError::SecretRead {
                name: name.to_owned(),
                key: key.to_string(),
                error,
            })?
            .ok_or_else(|| PollError::SecretMissing {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_string(),
            })?;
        let data = secret.data.unwrap_or_default();
        let value = |key: &'static str| {
            let bytes = data.get(key)?;
            String::from_utf8(bytes.0.clone()).ok()
        };
        let required = |field| {
            value(field).ok_or_else(|| PollError::SecretKey {
                name: name.to_owned(),
                key: key.to_string(),
                field,
            })
        };
        Ok(StaticCredentials {
            access_key_id: required(env::AWS_ACCESS_KEY_ID)?,
            secret_access_key: required(env::AWS_SECRET_ACCESS_KEY)?,
            session_token: value(env::AWS_SESSION_TOKEN),
        })
    }

    /// A cached client for `key`, or a new one.
    async fn client(
        &self,
        key: ClientKey,
        endpoint: Option<Endpoint>,
    ) -> Result<aws_sdk_s3::Client, PollError> {
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        let cfg = ClientConfig {
            endpoint,
            region: key.region.clone(),
            path_style: key.path_style,
            read_timeout: READ_TIMEOUT,
            ca_bundle: self.cfg.ca_bundle.clone(),
            credentials: key.credentials.clone(),
        };
        let client = s3::build_client(&cfg).await.map_err(PollError::Client)?;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.push((key, client.clone()));
        Ok(client)
    }

    fn cached(&self, key: &ClientKey) -> Option<aws_sdk_s3::Client> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| c.clone())
    }
}

/// A named source's error says which source it is.
fn in_source(name: &Option<SourceName>, error: PollError) -> PollError {
    match name {
        Some(name) => PollError::Source {
            name: name.clone(),
            error: Box::new(error),
        },
        None => error,
    }
}

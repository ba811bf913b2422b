//! Credentials read from Secrets, kept between polls.
//!
//! Without a cache every poll of every StatefulSet would GET its Secret: at
//! 1,000 StatefulSets that is as many API requests as listings. Credentials
//! change rarely, and when they do the old ones usually stop working, which
//! a listing notices: so an entry lives for `ttl` (`--secret-refresh-secs`),
//! and a poll that failed with cached credentials drops them and is tried
//! once more with a fresh read ([`super::poll::Poller::poll`]). A Secret that
//! was deleted is noticed at the latest `ttl` later. The cache is bounded
//! ([`MAX_ENTRIES`]) and holds only what the listing needs; it is pure (the
//! caller passes the time), so its rules are table-tested.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::s3::StaticCredentials;

/// Secrets kept at most; the cache is emptied when a new one would pass it.
pub const MAX_ENTRIES: usize = 4096;

/// A Secret, by namespace and name.
pub type SecretRef = (String, String);

/// Credentials by Secret, each with the time it was read.
#[derive(Debug, Default)]
pub struct SecretCache {
    ttl: Duration,
    entries: BTreeMap<SecretRef, (Instant, StaticCredentials)>,
}

impl SecretCache {
    /// A cache whose entries live `ttl`; zero keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: BTreeMap::new(),
        }
    }

    /// The credentials of `secret` if read less than `ttl` before `now`.
    pub fn get(&mut self, secret: &SecretRef, now: Instant) -> Option<StaticCredentials> {
        let (read, credentials) = self.entries.get(secret)?;
        if now.saturating_duration_since(*read) < self.ttl {
            return Some(credentials.clone());
        }
        self.entries.remove(secret);
        None
    }

    /// Remember what was read from `secret` at `now`.
    pub fn insert(&mut self, secret: SecretRef, credentials: StaticCredentials, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&secret) {
            self.entries.clear();
        }
        self.entries.insert(secret, (now, credentials));
    }

    /// Forget `secret` (its credentials just failed).
    pub fn remove(&mut self, secret: &SecretRef) {
        self.entries.remove(secret);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(id: &str) -> StaticCredentials {
        StaticCredentials {
            access_key_id: id.to_owned(),
            secret_access_key: "s".to_owned(),
            session_token: None,
        }
    }

    fn secret(ns: &str, name: &str) -> SecretRef {
        (ns.to_owned(), name.to_owned())
    }

    #[test]
    fn entries_live_for_the_ttl_then_are_read_again() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut cache = SecretCache::new(Duration::from_secs(60));
        cache.insert(secret("a", "creds"), creds("one"), t0);
        // (lookup, at, expected)
        let table = [
            (secret("a", "creds"), s(0), Some("one")),
            (secret("a", "creds"), s(59), Some("one")),
            (secret("b", "creds"), s(1), None),
            (secret("a", "other"), s(1), None),
            (secret("a", "creds"), s(60), None),
            // expired entries are dropped, not revived by an earlier time
            (secret("a", "creds"), s(1), None),
        ];
        for (lookup, at, want) in table {
            let got = cache.get(&lookup, at).map(|c| c.access_key_id);
            assert_eq!(got.as_deref(), want, "{lookup:?} at +{:?}", at - t0);
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn a_removed_or_replaced_entry_is_not_served() {
        let now = Instant::now();
        let mut cache = SecretCache::new(Duration::from_secs(60));
        cache.insert(secret("a", "creds"), creds("one"), now);
        cache.insert(secret("a", "creds"), creds("two"), now);
        assert_eq!(
            cache.get(&secret("a", "creds"), now).unwrap().access_key_id,
            "two"
        );
        cache.remove(&secret("a", "creds"));
        assert!(cache.get(&secret("a", "creds"), now).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let now = Instant::now();
        let mut cache = SecretCache::new(Duration::ZERO);
        cache.insert(secret("a", "creds"), creds("one"), now);
        assert!(cache.is_empty());
        assert!(cache.get(&secret("a", "creds"), now).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let now = Instant::now();
        let mut cache = SecretCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES {
            cache.insert(secret("ns", &format!("s{i}")), creds("x"), now);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // an existing entry refreshed does not empty it
        cache.insert(secret("ns", "s0"), creds("y"), now);
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert(secret("ns", "new"), creds("z"), now);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.get(&secret("ns", "new"), now).unwrap().access_key_id,
            "z"
        );
    }
}

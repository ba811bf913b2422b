//! The one summary line printed at the end of a sync, as text or JSON.

use serde::Serialize;

/// What a sync did. Printed once, at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Keys returned by the listing of the source prefix.
    pub listed: u64,
    /// Selected objects whose file was already up to date.
    pub skipped: u64,
    pub downloaded: u64,
    /// Downloaded objects checked against a checksum or MD5 from S3.
    pub verified: u64,
    /// Downloaded objects S3 offered nothing to check against (named in the log).
    pub unverified: u64,
    pub pruned: u64,
    /// Bytes received from S3 in this run.
    pub bytes: u64,
    /// Bytes of changed objects taken from the installed files they replace
    /// (unchanged parts of a delta transfer) instead of from S3.
    pub reused_bytes: u64,
    pub seconds: f64,
    /// Megabytes (10^6 bytes) per second over the whole run.
    pub mb_per_s: f64,
    /// The source's name in a run of several; `None` for the unnamed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Summary {
    /// One human-readable line.
    pub fn text(&self) -> String {
        let source = (self.source.as_ref()).map_or_else(String::new, |s| format!(" source {s}:"));
        let reused = match self.reused_bytes {
            0 => String::new(),
            n => format!(" (+ {n} reused)"),
        };
        format!(
            "sync done:{source} listed {}, skipped {}, downloaded {} ({} verified, {} unverified), \
             pruned {}, {} bytes{reused} in {:.2} s ({:.1} MB/s)",
            self.listed,
            self.skipped,
            self.downloaded,
            self.verified,
            self.unverified,
            self.pruned,
            self.bytes,
            self.seconds,
            self.mb_per_s
        )
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let s = Summary {
            listed: 3,
            skipped: 1,
            downloaded: 2,
            verified: 2,
            pruned: 1,
            bytes: 2_000_000,
            seconds: 2.0,
            mb_per_s: 1.0,
            ..Summary::default()
        };
        assert_eq!(
            s.text(),
            "sync done: listed 3, skipped 1, downloaded 2 (2 verified, 0 unverified), pruned 1, \
             2000000 bytes in 2.00 s (1.0 MB/s)"
        );
        let v: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!(
            (&v["downloaded"], &v["reused_bytes"]),
            (&2.into(), &0.into())
        );
        let delta = Summary {
            reused_bytes: 3_000_000,
            ..s.clone()
        };
        assert!(
            delta
                .text()
                .contains(", 2000000 bytes (+ 3000000 reused) in 2.00 s"),
            "{}",
            delta.text()
        );
        assert_eq!(v["mb_per_s"], 1.0);
        assert!(v.get("source").is_none(), "{v}");
        let named = Summary {
            source: Some("model".to_owned()),
            ..s
        };
        assert!(
            named
                .text()
                .starts_with("sync done: source model: listed 3,"),
            "{}",
            named.text()
        );
        let v: serde_json::Value = serde_json::from_str(&named.json()).unwrap();
        assert_eq!(v["source"], "model");
    }
}

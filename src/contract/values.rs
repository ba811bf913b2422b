//! Newtypes for the values of the annotation contract.
//!
//! Each type parses once, with [`FromStr`], into something that is valid by
//! construction: the webhook, `inject` and `sync` all go through these parsers,
//! so a value that the webhook admitted can never be rejected later by the init
//! container, and a value set by hand in the environment gets the same checks.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::excerpt::Excerpt;

/// Why a single value did not parse. The caller adds which annotation or flag
/// it came from. Values are quoted as [`Excerpt`]s (a long one is cut), and
/// the reason is the first rule the value breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("must start with s3:// (got {0})")]
    NotS3Uri(Excerpt),
    #[error("bucket name {0} is not valid: {1}")]
    Bucket(Excerpt, &'static str),
    #[error("prefix {0} is not valid: {1}")]
    Prefix(Excerpt, &'static str),
    #[error("{0} is not a valid path: {1}")]
    SubPath(Excerpt, &'static str),
    #[error("{0} is not a valid name: {1}")]
    Name(Excerpt, &'static str),
    #[error("{0} is not a valid region: {1}")]
    Region(Excerpt, &'static str),
    #[error("{0} is not a valid endpoint: {1}")]
    Endpoint(Excerpt, &'static str),
    #[error("{0} is not a boolean: use \"true\" or \"false\"")]
    Bool(Excerpt),
    #[error("{0} is not a rollout mode: use \"on-change\" or \"off\"")]
    Rollout(Excerpt),
    #[error("glob pattern {0} is not valid: {1}")]
    Glob(Excerpt, String),
}

/// `s3://BUCKET` or `s3://BUCKET/PREFIX`.
///
/// The prefix is kept exactly as written after the bucket (without the leading
/// `/`). How it maps to files is decided by the sync planner
/// (see `sync::keys`): a prefix ending in `/` is always a folder; one that does
/// not is a single object when an object with exactly that key exists, and a
/// folder otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Uri {
    bucket: String,
    prefix: String,
}

impl S3Uri {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix as written, possibly empty, never starting with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl FromStr for S3Uri {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .trim()
            .strip_prefix("s3://")
            .ok_or_else(|| ValueError::NotS3Uri(s.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|why| ValueError::Bucket(bucket.into(), why))?;
        validate_prefix(prefix)?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

fn check_bucket(b: &str) -> Result<(), &'static str> {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=63).contains(&b.len()) {
        return Err("use 3-63 characters");
    }
    if !b.chars().all(|c| edge(c) || matches!(c, '.' | '-' | '_')) {
        return Err("use only a-z, 0-9, '.', '-' and '_'");
    }
    if !b.starts_with(edge) || !b.ends_with(edge) {
        return Err("start and end with a letter or digit");
    }
    Ok(())
}

fn validate_prefix(p: &str) -> Result<(), ValueError> {
    let err = |why| Err(ValueError::Prefix(p.into(), why));
    if p.len() > 1024 {
        return err("longer than 1024 bytes");
    }
    if p.contains(['\0', '\\']) || p.chars().any(char::is_control) {
        return err("contains a NUL, control character or backslash");
    }
    if p.starts_with('/') || p.contains("//") {
        return err("contains an empty path component");
    }
    if p.split('/').any(|c| c == "." || c == "..") {
        return err("contains a '.' or '..' component");
    }
    Ok(())
}

/// A relative directory inside the volume: no leading `/`, no `.`, `..` or
/// empty components, no NUL or backslash. A trailing `/` is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubPath(String);

impl SubPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SubPath {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| Err(ValueError::SubPath(s.into(), why));
        let trimmed = s.strip_suffix('/').unwrap_or(s);
        if trimmed.is_empty() {
            return err("is empty");
        }
        if trimmed.starts_with('/') {
            return err("must be relative, not absolute");
        }
        if trimmed.contains(['\0', '\\']) || trimmed.chars().any(char::is_control) {
            return err("contains a NUL, control character or backslash");
        }
        for part in trimmed.split('/') {
            match part {
                "" => return err("contains an empty component"),
                "." | ".." => return err("must not contain '.' or '..'"),
                _ => {}
            }
        }
        Ok(Self(trimmed.to_owned()))
    }
}

impl fmt::Display for SubPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kubernetes object name: a DNS-1123 subdomain when `subdomain` is set
/// (Secrets), a DNS-1123 label otherwise (volumes).
pub fn parse_k8s_name(s: &str, subdomain: bool) -> Result<String, ValueError> {
    let err = |why| Err(ValueError::Name(s.into(), why));
    let max = if subdomain { 253 } else { 63 };
    if s.is_empty() || s.len() > max {
        return err(if subdomain {
            "must be 1-253 characters"
        } else {
            "must be 1-63 characters"
        });
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let extra = |c: char| c == '-' || (subdomain && c == '.');
    if !s.chars().all(|c| ok(c) || extra(c)) || !s.starts_with(ok) || !s.ends_with(ok) {
        return err(
            "use lowercase letters, digits and '-', starting and ending with a letter or digit",
        );
    }
    Ok(s.to_owned())
}

/// An AWS-style region name such as `eu-west-1` (S3-compatible stores often
/// use `us-east-1`).
pub fn parse_region(s: &str) -> Result<String, ValueError> {
    let err = |why| Err(ValueError::Region(s.into(), why));
    if s.is_empty() || s.len() > 64 {
        return err("use 1-64 characters");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return err("use a-z, 0-9 and '-' only");
    }
    Ok(s.to_owned())
}

/// An `http://` or `https://` URL with a host and nothing after the path.
/// Userinfo is refused so that credentials never travel in an annotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Endpoint {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| {
            Err(ValueError::Endpoint(
                redact_userinfo(s).as_str().into(),
                why,
            ))
        };
        let rest = match s.split_once("://") {
            Some(("http" | "https", rest)) => rest,
            _ => return err("must start with http:// or https://"),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return err("has no host");
        }
        if authority.contains('@') {
            return err("must not contain credentials; use s3-seed.io/credentials-secret");
        }
        if s.contains(['?', '#', ' ']) || s.chars().any(char::is_control) {
            return err("must not contain a query, fragment, space or control character");
        }
        if s.parse::<http::Uri>().is_err() {
            return err("is not a valid URL");
        }
        Ok(Self(s.trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Drop anything between `://` and `@` so an error never echoes a password.
fn redact_userinfo(s: &str) -> String {
    match (s.find("://"), s.find('@')) {
        (Some(i), Some(j)) if j > i => format!("{}://***{}", &s[..i], &s[j..]),
        _ => s.to_owned(),
    }
}

/// `"true"` or `"false"` (case-insensitive), nothing else.
pub fn parse_bool(s: &str) -> Result<bool, ValueError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ValueError::Bool(s.into())),
    }
}

/// A comma-separated list of glob patterns on keys relative to the prefix.
/// `*` and `?` stay inside one path component; `**` crosses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GlobList(Vec<String>);

impl GlobList {
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compile for matching. Cannot fail: every pattern was checked in
    /// [`FromStr`].
    pub fn compile(&self) -> Vec<glob::Pattern> {
        self.0
            .iter()
            .filter_map(|p| glob::Pattern::new(p).ok())
            .collect()
    }
}

impl FromStr for GlobList {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            glob::Pattern::new(p).map_err(|e| ValueError::Glob(p.into(), e.msg.to_owned()))?;
            out.push(p.to_owned());
        }
        Ok(Self(out))
    }
}

impl fmt::Display for GlobList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris() {
        let ok = [
            ("s3://bucket", "bucket", ""),
            ("s3://my.bucket-1/", "my.bucket-1", ""),
            ("s3://bucket/models/", "bucket", "models/"),
            ("s3://bucket/models/big.bin", "bucket", "models/big.bin"),
            ("  s3://b_b/a b/c  ", "b_b", "a b/c"),
        ];
        for (input, bucket, prefix) in ok {
            let u: S3Uri = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((u.bucket(), u.prefix()), (bucket, prefix), "{input}");
        }
        let bad = [
            "bucket/x",
            "http://bucket/x",
            "s3://",
            "s3://ab",
            "s3://-bucket",
            "s3://Bucket",
            "s3://bucket//x",
            "s3://bucket/a/../b",
            "s3://bucket/./b",
            "s3://bucket/a\\b",
            "s3://bucket/a\0b",
        ];
        for input in bad {
            assert!(input.parse::<S3Uri>().is_err(), "{input} should fail");
        }
    }

    #[test]
    fn s3_uri_display_round_trips() {
        for s in ["s3://bucket", "s3://bucket/p/", "s3://bucket/p/x.bin"] {
            assert_eq!(s.parse::<S3Uri>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn sub_paths() {
        assert_eq!("data".parse::<SubPath>().unwrap().as_str(), "data");
        assert_eq!("a/b/".parse::<SubPath>().unwrap().as_str(), "a/b");
        for bad in ["", "/", "/abs", "a/../b", "..", ".", "a//b", "a\\b", "a\0"] {
            assert!(bad.parse::<SubPath>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn names_regions_bools() {
        assert!(parse_k8s_name("data", false).is_ok());
        assert!(parse_k8s_name("my.secret", true).is_ok());
        assert!(parse_k8s_name("my.secret", false).is_err());
        assert!(parse_k8s_name("Data", false).is_err());
        assert!(parse_k8s_name("-a", false).is_err());
        assert!(parse_k8s_name(&"a".repeat(64), false).is_err());
        assert!(parse_region("eu-west-1").is_ok());
        assert!(parse_region("EU").is_err());
        assert!(parse_region("").is_err());
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("false"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            "http://minio.minio.svc:9000/"
                .parse::<Endpoint>()
                .unwrap()
                .as_str(),
            "http://minio.minio.svc:9000"
        );
        assert!("https://s3.example.com".parse::<Endpoint>().is_ok());
        for bad in [
            "minio:9000",
            "ftp://x",
            "http://",
            "http://x?y=1",
            "http://a b",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} should fail");
        }
        let err = "http://user:hunter2@host".parse::<Endpoint>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn refusals_give_the_first_rule_broken_and_quote_an_excerpt() {
        let long = |c: &str| c.repeat(5000);
        let cases: Vec<(Result<(), ValueError>, &str)> = vec![
            (parse_region(&long("a")).map(drop), "use 1-64 characters"),
            (parse_region(&long("A")).map(drop), "use 1-64 characters"),
            (
                parse_region("EU").map(drop),
                "\"EU\" is not a valid region: use a-z",
            ),
            (parse_region("").map(drop), "use 1-64 characters"),
            (
                "s3://b".parse::<S3Uri>().map(drop),
                "\"b\" is not valid: use 3-63",
            ),
            ("s3://B-b".parse::<S3Uri>().map(drop), "use only a-z, 0-9"),
            (
                "s3://-bb".parse::<S3Uri>().map(drop),
                "start and end with a letter",
            ),
            (
                "s3://bucket/a\0b".parse::<S3Uri>().map(drop),
                "control character",
            ),
            (
                format!("s3://{}", long("b")).parse::<S3Uri>().map(drop),
                "use 3-63 characters",
            ),
            (parse_k8s_name(&long("x"), false).map(drop), "must be 1-63"),
            (parse_bool(&long("y")).map(drop), "is not a boolean"),
        ];
        for (result, needle) in cases {
            let msg = result.expect_err(needle).to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(msg.len() < 200, "the value is cut: {msg}");
        }
        let msg = parse_region(&long("a")).unwrap_err().to_string();
        assert_eq!(
            msg,
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…\" (5000 bytes) is not a valid region: use 1-64 characters"
        );
    }

    #[test]
    fn glob_lists() {
        let g: GlobList = " *.bin, pages/** ,".parse().unwrap();
        assert_eq!(g.patterns(), ["*.bin", "pages/**"]);
        assert_eq!(g.to_string(), "*.bin,pages/**");
        assert!("[".parse::<GlobList>().is_err());
        assert!("".parse::<GlobList>().unwrap().is_empty());
    }
}

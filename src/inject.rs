//! `s3-seed inject`: mutate manifests offline exactly as the webhook would.
//!
//! Each StatefulSet document goes through the webhook's own
//! [`mutate`](crate::webhook::mutate) and the resulting JSON Patch is
//! applied to the document, so the output is what the API server would store
//! after admission; there is no second code path to drift. Input is a
//! multi-document YAML stream or a stream of JSON values; `kind: List`
//! documents (and JSON arrays) have their items mutated. A document that
//! needs no change is printed with its original text, comments included; a
//! mutated one is re-rendered (YAML maps come out with sorted keys). Nothing
//! is printed unless every document was admitted, so `inject | kubectl
//! apply -f -` never applies half a stream.
//!
//! Documents are decoded strictly ([`strict`]): a repeated key is refused
//! with its line, as the API server refuses duplicate fields. A denial says
//! exactly what the webhook's denial says, after the document it is about.

mod strict;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use crate::excerpt::Excerpt;
use crate::webhook::{InjectConfig, MutateError, mutate};
use strict::StrictValue;

/// Why `inject` produced no output. Documents are numbered from 1. Each
/// message carries its cause once (no `source()` repeats it).
#[derive(Debug, Error)]
pub enum InjectError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
    #[error("document {index}: not valid YAML: {error}")]
    Yaml {
        index: usize,
        error: serde_yaml_ng::Error,
    },
    #[error("document {index}: not valid JSON: {error}")]
    Json {
        index: usize,
        error: serde_json::Error,
    },
    #[error("document {index} ({what}): denied: {denial}")]
    Denied {
        index: usize,
        what: String,
        denial: Box<MutateError>,
    },
    #[error("document {index} ({what}): the webhook's patch does not apply: {message}")]
    Patch {
        index: usize,
        what: String,
        message: String,
    },
    #[error("document {index}: cannot render: {message}")]
    Render { index: usize, message: String },
}

/// Read `file` (`-` for standard input), mutate, print to standard output.
pub fn run(file: &Path, config: &InjectConfig) -> Result<(), InjectError> {
    let read_err = |error| InjectError::Read {
        path: file.to_owned(),
        error,
    };
    let mut input = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(read_err)?;
    } else {
        input = std::fs::read_to_string(file).map_err(read_err)?;
    }
    let (output, warnings) = inject_str(&input, config)?;
    for warning in warnings {
        eprintln!("Warning: {warning}");
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(InjectError::Write)
}

/// Mutate every StatefulSet in a YAML or JSON stream; return the stream,
/// and the webhook's warnings (what kubectl would print), each prefixed with
/// the document it is about.
pub fn inject_str(
    input: &str,
    config: &InjectConfig,
) -> Result<(String, Vec<String>), InjectError> {
    let mut warnings = Vec::new();
    let output = if input.trim_start().starts_with(['{', '[']) {
        inject_json(input, config, &mut warnings)
    } else {
        inject_yaml(input, config, &mut warnings)
    }?;
    Ok((output, warnings))
}

fn inject_yaml(
    input: &str,
    config: &InjectConfig,
    warnings: &mut Vec<String>,
) -> Result<String, InjectError> {
    let mut out = String::with_capacity(input.len() + 1024);
    let mut line = 0;
    for (i, chunk) in split_yaml(input).into_iter().enumerate() {
        let index = i + 1;
        let mut doc =
            parse_yaml(chunk, line).map_err(|error| InjectError::Yaml { index, error })?;
        line += chunk.matches('\n').count();
        if !mutate_value(&mut doc, index, config, warnings)? {
            out.push_str(chunk);
            continue;
        }
        let rendered = serde_yaml_ng::to_string(&doc).map_err(|e| InjectError::Render {
            index,
            message: e.to_string(),
        })?;
        out.push_str(separator_line(chunk));
        out.push_str(&rendered);
    }
    Ok(out)
}

fn inject_json(
    input: &str,
    config: &InjectConfig,
    warnings: &mut Vec<String>,
) -> Result<String, InjectError> {
    let mut out = String::with_capacity(input.len() + 1024);
    let mut stream = serde_json::Deserializer::from_str(input).into_iter::<StrictValue>();
    let mut start = 0;
    let mut index = 0;
    while let Some(next) = stream.next() {
        index += 1;
        let mut doc = next.map_err(|error| InjectError::Json { index, error })?.0;
        let end = stream.byte_offset();
        let chunk = &input[start..end];
        if mutate_value(&mut doc, index, config, warnings)? {
            let body = chunk.trim_start();
            out.push_str(&chunk[..chunk.len() - body.len()]);
            let pretty = serde_json::to_string_pretty(&doc).map_err(|e| InjectError::Render {
                index,
                message: e.to_string(),
            })?;
            out.push_str(&pretty);
        } else {
            out.push_str(chunk);
        }
        start = end;
    }
    out.push_str(&input[start..]);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Mutate a document in place: a StatefulSet, or the items of a list.
/// Returns whether anything changed.
fn mutate_value(
    doc: &mut Value,
    index: usize,
    config: &InjectConfig,
    warnings: &mut Vec<String>,
) -> Result<bool, InjectError> {
    let items = match doc {
        Value::Array(items) => Some(items),
        Value::Object(map) if is_list(map) => map.get_mut("items").and_then(Value::as_array_mut),
        _ => None,
    };
    if let Some(items) = items {
        let mut changed = false;
        for (i, item) in items.iter_mut().enumerate() {
            let prefix = format!("item {}, ", i + 1);
            changed |= mutate_statefulset(item, index, &prefix, config, warnings)?;
        }
        return Ok(changed);
    }
    mutate_statefulset(doc, index, "", config, warnings)
}

fn is_list(map: &serde_json::Map<String, Value>) -> bool {
    map.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && map.get("items").is_some_and(Value::is_array)
}

/// Apply the webhook's patch to one object if it is an apps/v1 StatefulSet.
fn mutate_statefulset(
    object: &mut Value,
    index: usize,
    prefix: &str,
    config: &InjectConfig,
    warnings: &mut Vec<String>,
) -> Result<bool, InjectError> {
    let field = |k: &str| object.get(k).and_then(Value::as_str);
    if field("apiVersion") != Some("apps/v1") || field("kind") != Some("StatefulSet") {
        return Ok(false);
    }
    let what = format!("{prefix}{}", describe(object));
    let mutation = mutate(object, config).map_err(|denial| InjectError::Denied {
        index,
        what: what.clone(),
        denial: Box::new(denial),
    })?;
    for warning in &mutation.warnings {
        warnings.push(format!("document {index} ({what}): {warning}"));
    }
    if mutation.is_empty() {
        return Ok(false);
    }
    json_patch::patch(object, &mutation.patch).map_err(|e| InjectError::Patch {
        index,
        what,
        message: e.to_string(),
    })?;
    Ok(true)
}

/// `StatefulSet namespace/name` (or without namespace) for error messages.
fn describe(object: &Value) -> String {
    let meta = |k: &str| {
        object
            .pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
    };
    match (meta("namespace"), meta("name")) {
        (Some(ns), Some(name)) => {
            format!("StatefulSet {}/{}", Excerpt::bare(ns), Excerpt::bare(name))
        }
        (None, Some(name)) => format!("StatefulSet {}", Excerpt::bare(name)),
        _ => "StatefulSet without a name".to_owned(),
    }
}

/// One YAML document, strictly. `first_line` is where the document starts
/// in the stream; an error is parsed again behind that many empty lines so
/// that its line number counts from the start of the stream.
fn parse_yaml(chunk: &str, first_line: usize) -> Result<Value, serde_yaml_ng::Error> {
    let parse = |text: &str| {
        serde_yaml_ng::from_str::<Option<StrictValue>>(text)
            .map(|doc| doc.map_or(Value::Null, |d| d.0))
    };
    match parse(chunk) {
        Err(_) if first_line > 0 => parse(&format!("{}{chunk}", "\n".repeat(first_line))),
        result => result,
    }
}

/// Split a YAML stream into documents, each starting with its `---` line
/// (except possibly the first), so that `concat(chunks) == input`.
fn split_yaml(input: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        if offset > 0 && is_separator(line) {
            chunks.push(&input[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    chunks.push(&input[start..]);
    chunks
}

/// A document start marker: `---` alone, or followed by a space or comment.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n', '#']))
}

/// The `---` line a chunk starts with, if any, ending in a newline.
fn separator_line(chunk: &str) -> &str {
    let first = chunk.split_inclusive('\n').next().unwrap_or_default();
    if is_separator(first) && first.trim_end() == "---" {
        first
    } else if is_separator(first) {
        "---\n"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_split_keeps_every_byte() {
        let cases = [
            "",
            "a: 1\n",
            "---\na: 1\n",
            "a: 1\n---\nb: 2\n",
            "# head\n---\na: 1\n--- # c\nb: 2\n---\n",
            "a: |\n  ---\n  x\n---b: not a separator\n",
        ];
        for input in cases {
            assert_eq!(split_yaml(input).concat(), input, "{input:?}");
        }
        assert_eq!(split_yaml("a: 1\n---\nb: 2\n").len(), 2);
        assert_eq!(split_yaml("a: |\n  ---\n---b\n").len(), 1);
        assert_eq!(split_yaml("---\na: 1\n--- # c\nb: 2\n").len(), 2);
    }

    #[test]
    fn separator_lines() {
        assert_eq!(separator_line("---\na: 1\n"), "---\n");
        assert_eq!(separator_line("--- # note\na: 1\n"), "---\n");
        assert_eq!(separator_line("a: 1\n"), "");
    }
}

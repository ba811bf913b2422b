//! What reviewing one StatefulSet will cost in memory, counted from its JSON
//! text before any of it is decoded.
//!
//! The review never builds the whole object: the mutation reads a typed view
//! (annotations, container, claim template and volume names, volumes) and
//! copies out only the parts it may change (see `mutate::scope`). What it
//! allocates is therefore a few copies of those parts, however large the rest
//! of the object is. How large those parts become in memory depends on their
//! shape far more than on their length: `"a"` is 3 bytes of text and about
//! 64 bytes as a `serde_json::Value`; `{"a":0}` is 7 bytes and about 700
//! (a `BTreeMap` node holds 11 entries). So instead of a factor on the body
//! size, [`review_cost`] walks the text once (allocating nothing) and adds up
//! what glibc's malloc would hand out for each string, vector and map node of
//! those parts, rounding every size up. The handler reserves that much of the
//! decode budget before the review decodes anything.
//!
//! The walk follows [`SCOPE`]: a value under a path it names is counted
//! whole; a value where the table expects an object or array but finds
//! something else is counted whole too (the mutation then copies it as it
//! is); everything else is skipped.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Copies of the counted parts the review holds at its peak: the view, the
/// scope, the desired scope, and the aligned copies the patch is diffed from.
pub const COPIES: usize = 5;
/// Memory of one review that does not grow with the object: the response,
/// the patch, the injected container, the typed request.
pub const FIXED: usize = 256 * 1024;

/// Estimated peak heap bytes of reviewing an object whose JSON text is
/// `object`. Text that cannot be walked (nesting deeper than serde_json
/// allows) costs [`FIXED`]: decoding it fails just as early.
pub fn review_cost(object: &str) -> usize {
    let mut de = serde_json::Deserializer::from_str(object);
    match Walk(SCOPE).deserialize(&mut de) {
        Ok(counted) => counted.saturating_mul(COPIES).saturating_add(FIXED),
        Err(_) => FIXED,
    }
}

/// How the walk treats a value.
#[derive(Clone, Copy)]
enum Rule {
    /// Count everything under it.
    Count,
    /// An object copied as a map: walk the named keys, skip the others.
    Fields(&'static [(&'static str, Rule)]),
    /// An object read into a typed struct (no map nodes): walk the named
    /// keys, skip the others.
    Struct(&'static [(&'static str, Rule)]),
    /// An array: walk each element with the rule.
    Each(&'static Rule),
}

const NAME: Rule = Rule::Struct(&[("name", Rule::Count)]);

/// The parts of a StatefulSet the mutation reads or copies.
const SCOPE: Rule = Rule::Fields(&[
    ("metadata", Rule::Fields(&[("annotations", Rule::Count)])),
    (
        "spec",
        Rule::Fields(&[
            (
                "template",
                Rule::Fields(&[
                    ("metadata", Rule::Count),
                    (
                        "spec",
                        Rule::Fields(&[
                            ("initContainers", Rule::Count),
                            ("volumes", Rule::Count),
                            ("containers", Rule::Each(&NAME)),
                        ]),
                    ),
                ]),
            ),
            (
                "volumeClaimTemplates",
                Rule::Each(&Rule::Struct(&[("metadata", NAME)])),
            ),
        ]),
    ),
]);

/// `size_of::<serde_json::Value>()` on 64-bit targets.
const VALUE: usize = 32;
/// A `BTreeMap<String, Value>` node (internal nodes are the largest:
/// 11 keys, 11 values, 12 edges, header), as a malloc chunk.
const MAP_NODE: usize = 736;
/// Entries of a B-tree node other than the root, at least.
const MAP_NODE_MIN: usize = 5;
/// glibc serves requests this large with mmap (its default threshold).
const MMAP_THRESHOLD: usize = 128 * 1024;

/// The chunk glibc's malloc hands out for a request of `n` bytes.
fn chunk(n: usize) -> usize {
    match n {
        0 => 0,
        n if n >= MMAP_THRESHOLD => (n + 16).next_multiple_of(4096),
        n => (n + 8).next_multiple_of(16).max(32),
    }
}

/// A `Vec<Value>` of `n` elements grown by pushing (capacity doubles from
/// 4), plus half of it for the old buffer while the last growth copies.
fn array_heap(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let capacity = n.next_power_of_two().max(4);
    chunk(capacity * VALUE) * 3 / 2
}

/// A `BTreeMap<String, Value>` of `n` entries, keys excluded.
fn map_heap(n: usize) -> usize {
    match n {
        0 => 0,
        n => (1 + n / MAP_NODE_MIN) * MAP_NODE,
    }
}

/// Walks one value under a rule; yields the bytes counted.
struct Walk(Rule);

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_str<E>(self, s: &str) -> Result<usize, E> {
        Ok(chunk(s.len()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let element = match self.0 {
            Rule::Each(rule) => *rule,
            // An array where an object was expected is copied whole.
            Rule::Count | Rule::Fields(_) | Rule::Struct(_) => Rule::Count,
        };
        let (mut n, mut sum) = (0usize, 0usize);
        while let Some(bytes) = seq.next_element_seed(Walk(element))? {
            n += 1;
            sum = sum.saturating_add(bytes);
        }
        Ok(sum.saturating_add(array_heap(n)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let (fields, nodes) = match self.0 {
            Rule::Fields(fields) => (Some(fields), true),
            Rule::Struct(fields) => (Some(fields), false),
            Rule::Count | Rule::Each(_) => (None, true),
        };
        let (mut n, mut sum) = (0usize, 0usize);
        while let Some(key) = map.next_key_seed(Key(fields))? {
            let bytes = match (fields, key.rule) {
                (None, _) => map.next_value_seed(Walk(Rule::Count))?,
                (Some(_), Some(rule)) => map.next_value_seed(Walk(rule))?,
                (Some(_), None) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            n += 1;
            sum = sum.saturating_add(bytes);
            if nodes {
                sum = sum.saturating_add(chunk(key.len));
            }
        }
        Ok(if nodes {
            sum.saturating_add(map_heap(n))
        } else {
            sum
        })
    }
}

/// A map key: its length, and the rule for its value when walking fields.
struct Key(Option<&'static [(&'static str, Rule)]>);

struct KeyFound {
    len: usize,
    rule: Option<Rule>,
}

impl<'de> DeserializeSeed<'de> for Key {
    type Value = KeyFound;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyFound, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = KeyFound;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, s: &str) -> Result<KeyFound, E> {
        let rule = self
            .0
            .and_then(|fields| fields.iter().find(|(name, _)| *name == s))
            .map(|(_, rule)| *rule);
        Ok(KeyFound { len: s.len(), rule })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counted(object: &serde_json::Value) -> usize {
        (review_cost(&object.to_string()) - FIXED) / COPIES
    }

    fn statefulset(extra_annotations: usize, env: usize, containers: usize) -> serde_json::Value {
        let annotations: serde_json::Map<_, _> = (0..extra_annotations)
            .map(|i| (format!("example.com/k{i}"), json!("v")))
            .collect();
        let env: Vec<_> = (0..env)
            .map(|i| json!({"name": format!("VAR_{i}"), "value": "some value"}))
            .collect();
        let containers: Vec<_> = (0..containers)
            .map(|i| json!({"name": format!("c{i}"), "image": "app:1", "env": env}))
            .collect();
        json!({
            "metadata": {"name": "web", "annotations": annotations,
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"template": {"spec": {"containers": containers}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {}}}]},
            "status": {"replicas": 3},
        })
    }

    #[test]
    fn malloc_chunks_and_containers_round_up() {
        assert_eq!(chunk(0), 0);
        assert_eq!(chunk(1), 32);
        assert_eq!(chunk(24), 32);
        assert_eq!(chunk(25), 48);
        assert_eq!(chunk(MMAP_THRESHOLD), MMAP_THRESHOLD + 4096);
        assert_eq!(array_heap(1), chunk(4 * VALUE) * 3 / 2);
        assert_eq!(array_heap(5), chunk(8 * VALUE) * 3 / 2);
        assert_eq!(map_heap(1), MAP_NODE);
        assert_eq!(map_heap(11), 3 * MAP_NODE);
    }

    #[test]
    fn only_the_parts_the_review_reads_are_counted() {
        let base = counted(&statefulset(0, 0, 1));
        // Bulk outside the scope (env of the app containers, managedFields,
        // claim template specs, status) costs nothing.
        assert_eq!(counted(&statefulset(0, 5000, 1)), base);
        let mut fat = statefulset(0, 0, 1);
        fat["status"]["conditions"] = json!(vec!["x"; 10_000]);
        fat["metadata"]["managedFields"] = json!(vec![json!({"a": 1}); 10_000]);
        assert_eq!(counted(&fat), base);
        // Annotations and more containers do count.
        assert!(counted(&statefulset(100, 0, 1)) > base + 100 * 32);
        let per_container = (counted(&statefulset(0, 0, 1001)) - base) / 1000;
        assert!((VALUE..200).contains(&per_container), "{per_container}");
    }

    #[test]
    fn small_maps_cost_a_node_each_and_unexpected_shapes_count_whole() {
        let one = |v: serde_json::Value| json!({"metadata": {"annotations": v}});
        let maps = counted(&one(json!(vec![json!({"a": 0}); 1000])));
        assert!(maps >= 1000 * MAP_NODE, "{maps}");
        // `metadata` as an array is copied whole by the mutation.
        let odd = counted(&json!({"metadata": vec!["x"; 1000]}));
        assert!(odd >= 1000 * 32, "{odd}");
        // Not an object at all.
        assert_eq!(review_cost("\"a string\""), COPIES * 32 + FIXED);
        // Deeper than serde_json decodes.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(review_cost(&deep), FIXED);
    }
}

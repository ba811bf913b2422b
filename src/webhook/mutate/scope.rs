//! The parts of a StatefulSet the mutation may change, copied out of it.
//!
//! Injecting and removing only ever write `metadata.annotations`,
//! `spec.template.metadata` and `spec.template.spec.initContainers`. A copy
//! of the object that keeps just those values, and the parents on the way to
//! them exactly as they are in the object, gives the same JSON Patch as the
//! whole object would: `json_patch::diff` compares objects key by key, and
//! every key the copy leaves out is equal on both sides. So the webhook
//! diffs a few kilobytes instead of cloning a StatefulSet of megabytes two
//! or three times. `checked()` in the mutation tests proves the equality for
//! every case by comparing this patch, applied to the whole object, with the
//! whole desired object.
//!
//! A parent that is not an object (a shape the typed view accepts, such as
//! a struct written as an array) is kept whole: the mutation replaces it,
//! and the diff must see what it replaces.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::json_scalars::visit_json_scalars;

/// What to keep of a value.
#[derive(Clone, Copy)]
enum Keep {
    Whole,
    Fields(&'static [(&'static str, Keep)]),
}

const WRITTEN: Keep = Keep::Fields(&[
    ("metadata", Keep::Fields(&[("annotations", Keep::Whole)])),
    (
        "spec",
        Keep::Fields(&[(
            "template",
            Keep::Fields(&[
                ("metadata", Keep::Whole),
                ("spec", Keep::Fields(&[("initContainers", Keep::Whole)])),
            ]),
        )]),
    ),
]);

/// The scope of a decoded object.
pub(super) fn of_value(object: &Value) -> Value {
    // Deserializing from a `&Value` into a `Value` cannot fail.
    Pick(WRITTEN).deserialize(object).unwrap_or(Value::Null)
}

/// The scope of an object given as JSON text, decoding nothing else.
pub(super) fn of_json(object: &str) -> Result<Value, serde_json::Error> {
    Pick(WRITTEN).deserialize(&mut serde_json::Deserializer::from_str(object))
}

struct Pick(Keep);

impl<'de> DeserializeSeed<'de> for Pick {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::Whole => Value::deserialize(d),
            Keep::Fields(_) => d.deserialize_any(self),
        }
    }
}

/// Only reached for [`Keep::Fields`]: an object is reduced, anything else
/// is kept whole.
impl<'de> Visitor<'de> for Pick {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    visit_json_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Keep::Fields(fields) = self.0 else {
            return Err(serde::de::Error::custom("a whole value is not walked"));
        };
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match fields.iter().find(|(name, _)| *name == key) {
                Some((_, keep)) => {
                    let value = map.next_value_seed(Pick(*keep))?;
                    out.insert(key, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_written_paths_and_their_parents_only() {
        let object = json!({
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "annotations": {"a": "1"}, "managedFields": [1, 2]},
            "spec": {
                "replicas": 3,
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "x"}]},
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            },
        });
        let want = json!({
            "metadata": {"annotations": {"a": "1"}},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"initContainers": [{"name": "x"}]},
            }},
        });
        assert_eq!(of_value(&object), want);
        assert_eq!(of_json(&object.to_string()).expect("json"), want);
    }

    #[test]
    fn missing_null_and_odd_parents_stay_as_they_are() {
        let cases = [
            (
                json!({"metadata": {}, "spec": {}}),
                json!({"metadata": {}, "spec": {}}),
            ),
            (
                json!({"metadata": {"annotations": null}}),
                json!({"metadata": {"annotations": null}}),
            ),
            (
                json!({"metadata": [null], "spec": 1}),
                json!({"metadata": [null], "spec": 1}),
            ),
            (json!("text"), json!("text")),
        ];
        for (object, want) in cases {
            assert_eq!(of_value(&object), want, "{object}");
            assert_eq!(
                of_json(&object.to_string()).expect("json"),
                want,
                "{object}"
            );
        }
    }
}

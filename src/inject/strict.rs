//! Manifests decoded strictly: a mapping that repeats a key is refused.
//!
//! Both serde_json's `Value` and a YAML map keep the last of two equal keys
//! without a word, so two `s3-seed.io/source` lines would silently become
//! one; the API server refuses duplicate fields (strict decoding), and so
//! does `inject`. The check runs while the key itself is read, so the
//! error carries the line and column of the repeated key.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::excerpt::Excerpt;
use crate::json_scalars::visit_json_scalars;

/// A JSON value whose maps had no repeated key.
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Strict).map(StrictValue)
    }
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    visit_json_scalars!();

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(NewKey(&out))? {
            let value = map.next_value_seed(Strict)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// A map key that must not be in the map yet.
struct NewKey<'m>(&'m Map<String, Value>);

impl<'de> DeserializeSeed<'de> for NewKey<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NewKey<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        if self.0.contains_key(key) {
            return Err(E::custom(format_args!(
                "duplicate key {}",
                Excerpt::new(key)
            )));
        }
        Ok(key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_with_their_line() {
        let yaml = "a: 1\nb:\n  c: x\n  c: y\n";
        let err = serde_yaml_ng::from_str::<StrictValue>(yaml)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("duplicate key \"c\""), "{err}");
        assert!(err.contains("line 4"), "{err}");

        let json = "{\"a\": 1,\n \"a\": 2}";
        let err = serde_json::from_str::<StrictValue>(json)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("duplicate key \"a\" at line 2"), "{err}");
    }

    #[test]
    fn decodes_like_serde_json_value_otherwise() {
        let yaml = "a: [1, -2, 1.5, true, null, x]\n1: {}\n'q': ~\n";
        let strict = serde_yaml_ng::from_str::<StrictValue>(yaml)
            .expect("yaml")
            .0;
        let plain: Value = serde_yaml_ng::from_str(yaml).expect("yaml");
        assert_eq!(strict, plain);
        let json = r#"{"a": [1, -2, 1.5e3, "s", {"b": null}], "c": {}}"#;
        let strict = serde_json::from_str::<StrictValue>(json).expect("json").0;
        assert_eq!(strict, serde_json::from_str::<Value>(json).expect("json"));
    }
}

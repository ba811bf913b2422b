//! The scalar arms of a serde [`Visitor`](serde::de::Visitor) that builds a
//! `serde_json::Value`: booleans, numbers, strings and null become the same
//! `Value` that `Value::deserialize` would give. Visitors that treat maps or
//! sequences their own way (the strict decoder of `inject`, the webhook's
//! field picker) write only those arms and take these from one place.

/// Expands, inside `impl<'de> Visitor<'de> for T { type Value = Value; .. }`,
/// to `visit_bool`, `visit_i64`, `visit_u64`, `visit_f64`, `visit_str`,
/// `visit_string`, `visit_unit` and `visit_none`.
macro_rules! visit_json_scalars {
    () => {
        fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
            Ok(v.into())
        }

        fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
            Ok(v.into())
        }

        fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
            Ok(serde_json::Number::from_f64(v)
                .map_or(serde_json::Value::Null, serde_json::Value::Number))
        }

        fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::String(v))
        }

        fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::Null)
        }

        fn visit_none<E>(self) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::Null)
        }
    };
}

pub(crate) use visit_json_scalars;

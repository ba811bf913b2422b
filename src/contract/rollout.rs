//! `s3-seed.io/rollout`: whether `s3-seed controller` replaces the pods of a
//! StatefulSet when its source changes. A value of its own, outside
//! [`super::SeedSpec`], because only the controller acts on it; the webhook
//! validates it (through [`super::SeedSpec::from_annotations`]) so a typo is
//! refused at admission instead of silently meaning "off".

use std::collections::BTreeMap;
use std::str::FromStr;

use super::{AnnotationError, ROLLOUT, ValueError};

/// What the controller does when the source of a StatefulSet changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Rollout {
    /// Nothing (the default): pods sync the source when they next start.
    #[default]
    Off,
    /// Record the new revision on the pod template, which rolls the pods.
    OnChange,
}

impl Rollout {
    /// The mode the annotations ask for (`Off` when the key is absent).
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, AnnotationError> {
        annotations
            .get(ROLLOUT)
            .map_or(Ok(Self::Off), |v| v.parse())
            .map_err(|error| AnnotationError::Invalid {
                key: ROLLOUT.to_owned(),
                error,
            })
    }
}

impl FromStr for Rollout {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "on-change" => Ok(Self::OnChange),
            "off" => Ok(Self::Off),
            _ => Err(ValueError::Rollout(s.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(value: Option<&str>) -> Result<Rollout, String> {
        let map: BTreeMap<String, String> = value
            .map(|v| (ROLLOUT.to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        Rollout::from_annotations(&map).map_err(|e| e.to_string())
    }

    #[test]
    fn modes_and_refusals() {
        assert_eq!(of(None), Ok(Rollout::Off));
        assert_eq!(of(Some("off")), Ok(Rollout::Off));
        assert_eq!(of(Some("on-change")), Ok(Rollout::OnChange));
        assert_eq!(of(Some(" on-change ")), Ok(Rollout::OnChange));
        for bad in ["true", "On-Change", "always", ""] {
            assert_eq!(
                of(Some(bad)),
                Err(format!(
                    "annotation s3-seed.io/rollout: \"{bad}\" is not a rollout mode: use \"on-change\" or \"off\""
                )),
                "{bad}"
            );
        }
    }
}

//! Traffic policies (`<root>/<name>/traffic.json`): weights over versions or labels for
//! requests that name no version, and an optional shadow target that receives a copy of a
//! percentage of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{RegistryError, Repository};

/// File holding a model's traffic policy.
pub const TRAFFIC_FILE: &str = "traffic.json";

/// One weighted target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A version number (`"3"`) or a label (`"stable"`).
    pub target: String,
    /// Relative weight.
    pub weight: u32,
}

/// Mirror a percentage of routed requests to a target; its answers are discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// A version number or a label.
    pub target: String,
    /// Percentage of requests mirrored, 0–100.
    pub percent: f64,
}

/// A model's traffic policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Weighted targets (any number).
    pub routes: Vec<Route>,
    /// Optional shadow target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
}

/// A target resolved against versions and labels.
pub fn target_version(target: &str, labels: &BTreeMap<String, u64>) -> Option<u64> {
    target.parse::<u64>().ok().or_else(|| labels.get(target).copied())
}

impl Traffic {
    /// Checks weights and that every target names an existing version or label.
    pub fn validate(&self, versions: &[u64], labels: &BTreeMap<String, u64>) -> Result<(), String> {
        if self.routes.is_empty() {
            return Err("routes: give at least one {target, weight}".into());
        }
        if self.routes.iter().map(|r| r.weight as u64).sum::<u64>() == 0 {
            return Err("routes: the weights sum to 0".into());
        }
        let check = |path: String, target: &str| -> Result<(), String> {
            match target_version(target, labels) {
                Some(v) if versions.contains(&v) => Ok(()),
                Some(v) => Err(format!("{path}: version {v} does not exist; versions: {versions:?}")),
                None => Err(format!(
                    "{path}: {target:?} is neither a version nor a label; labels: {:?}",
                    labels.keys().collect::<Vec<_>>()
                )),
            }
        };
        for (i, r) in self.routes.iter().enumerate() {
            check(format!("routes[{i}].target"), &r.target)?;
        }
        if let Some(s) = &self.shadow {
            check("shadow.target".into(), &s.target)?;
            if !(0.0..=100.0).contains(&s.percent) {
                return Err(format!("shadow.percent: expected 0 to 100, got {}", s.percent));
            }
        }
        Ok(())
    }

    /// Whether the policy sends traffic (or shadow copies) to `version`.
    pub fn points_at(&self, version: u64, labels: &BTreeMap<String, u64>) -> bool {
        self.routes.iter().filter(|r| r.weight > 0).any(|r| target_version(&r.target, labels) == Some(version))
            || self.shadow.as_ref().is_some_and(|s| target_version(&s.target, labels) == Some(version))
    }
}

impl Repository {
    /// The traffic policy of `name`, if one is set.
    pub fn traffic(&self, name: &str) -> Result<Option<Traffic>, RegistryError> {
        self.traffic_from(name, self.read_local(name, TRAFFIC_FILE)?.as_deref())
    }

    /// The traffic policy of `name` as every replica sees it (see [`Repository::shared_labels`]).
    pub fn shared_traffic(&self, name: &str) -> Result<Option<Traffic>, RegistryError> {
        self.traffic_from(name, self.shared_document(name, TRAFFIC_FILE)?.as_deref())
    }

    fn traffic_from(&self, name: &str, document: Option<&[u8]>) -> Result<Option<Traffic>, RegistryError> {
        document.map(|bytes| self.parse_document(name, TRAFFIC_FILE, bytes)).transpose()
    }

    /// Sets (after validating) or clears the traffic policy of `name`.
    pub fn set_traffic(&self, name: &str, traffic: Option<&Traffic>) -> Result<(), RegistryError> {
        self.update_traffic(name, |current| {
            *current = traffic.cloned();
            Ok::<(), RegistryError>(())
        })
    }

    /// Changes the traffic policy of `name` with `change` (which may refuse with its own error
    /// and may run more than once); a policy it leaves is validated against the versions and
    /// labels before it is stored.
    pub fn update_traffic<E: From<RegistryError>>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut Option<Traffic>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.update_document(name, TRAFFIC_FILE, |current| {
            let mut traffic = self.traffic_from(name, current)?;
            change(&mut traffic)?;
            let Some(t) = traffic else { return Ok(None) };
            t.validate(&self.published_versions(name)?, &self.shared_labels(name)?)
                .map_err(|m| RegistryError::Manifest { path: TRAFFIC_FILE.into(), message: m })?;
            Ok(Some(serde_json::to_vec_pretty(&t).expect("traffic serialises")))
        })
    }

    /// Removes a version folder, refusing while a label or the traffic policy names it (as
    /// the shared store has them, when there is one, not this folder's copy).
    pub fn delete_version(&self, name: &str, version: u64) -> Result<(), RegistryError> {
        let versions = self.published_versions(name)?;
        if !versions.contains(&version) {
            return Err(RegistryError::VersionNotFound { name: name.into(), version, available: versions });
        }
        let labels = self.shared_labels(name)?;
        if let Some((l, _)) = labels.iter().find(|(_, v)| **v == version) {
            return Err(RegistryError::InUse(format!("label {l:?} names version {version} of {name:?}")));
        }
        if self.shared_traffic(name)?.is_some_and(|t| t.points_at(version, &labels)) {
            return Err(RegistryError::InUse(format!(
                "the traffic policy of {name:?} sends requests to version {version}"
            )));
        }
        if let Some(remote) = self.remote() {
            remote.delete_version(name, version)?;
        }
        self.remove_cached(name, version)?;
        self.announce(name);
        Ok(())
    }
}

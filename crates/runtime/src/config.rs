//! Per-model serving configuration (`<repo>/<name>/config.json`) over server-wide defaults.

use serde::{Deserialize, Serialize};

use crate::BatchConfig;

/// Which versions of a model are served (TF Serving / Triton semantics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionPolicy {
    /// The `num_versions` highest versions.
    Latest {
        /// How many.
        num_versions: usize,
    },
    /// Every version.
    All {},
    /// Exactly these versions (those that exist).
    Specific {
        /// The versions.
        versions: Vec<u64>,
    },
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest { num_versions: 1 }
    }
}

impl VersionPolicy {
    /// The versions to serve out of those on disk (ascending).
    pub fn select(&self, on_disk: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::Latest { num_versions } => on_disk[on_disk.len().saturating_sub(*num_versions)..].to_vec(),
            VersionPolicy::All {} => on_disk.to_vec(),
            VersionPolicy::Specific { versions } => on_disk.iter().copied().filter(|v| versions.contains(v)).collect(),
        }
    }
}

/// What `config.json` may set; absent keys take the server's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    version_policy: Option<VersionPolicy>,
    max_batch_size: Option<usize>,
    max_queue_delay_us: Option<u64>,
    max_queue_size: Option<usize>,
    instances: Option<usize>,
    max_batch_tokens: Option<usize>,
    max_batch_requests: Option<usize>,
}

/// The effective serving configuration of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// Versions to serve.
    pub version_policy: VersionPolicy,
    /// Batching and compute threads.
    pub batching: BatchConfig,
}

impl ModelConfig {
    /// Parses `config.json` text over `defaults`; errors name the key at fault.
    pub fn parse(text: &[u8], defaults: &BatchConfig) -> Result<ModelConfig, String> {
        let f: ConfigFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let batching = BatchConfig {
            max_batch_size: f.max_batch_size.unwrap_or(defaults.max_batch_size),
            max_queue_delay_us: f.max_queue_delay_us.unwrap_or(defaults.max_queue_delay_us),
            max_queue_size: f.max_queue_size.unwrap_or(defaults.max_queue_size),
            instances: f.instances.unwrap_or(defaults.instances),
            max_batch_tokens: f.max_batch_tokens.unwrap_or(defaults.max_batch_tokens),
            max_batch_requests: f.max_batch_requests.unwrap_or(defaults.max_batch_requests),
        };
        for (key, v) in [
            ("max_batch_size", batching.max_batch_size),
            ("max_queue_size", batching.max_queue_size),
            ("instances", batching.instances),
        ] {
            if v == 0 {
                return Err(format!("{key}: expected a positive integer, got 0"));
            }
        }
        if let Some(VersionPolicy::Latest { num_versions: 0 }) = f.version_policy {
            return Err("version_policy.latest.num_versions: expected a positive integer, got 0".into());
        }
        Ok(ModelConfig { version_policy: f.version_policy.unwrap_or_default(), batching })
    }

    /// The configuration when a model has no `config.json`.
    pub fn defaults(defaults: &BatchConfig) -> ModelConfig {
        ModelConfig { version_policy: VersionPolicy::default(), batching: defaults.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_select_versions() {
        let disk = [1, 2, 4, 7];
        assert_eq!(VersionPolicy::default().select(&disk), vec![7]);
        assert_eq!(VersionPolicy::Latest { num_versions: 3 }.select(&disk), vec![2, 4, 7]);
        assert_eq!(VersionPolicy::Latest { num_versions: 9 }.select(&disk), vec![1, 2, 4, 7]);
        assert_eq!(VersionPolicy::All {}.select(&disk), vec![1, 2, 4, 7]);
        assert_eq!(VersionPolicy::Specific { versions: vec![2, 3] }.select(&disk), vec![2]);
    }

    #[test]
    fn config_files_override_defaults_and_reject_unknown_keys() {
        let d = BatchConfig::default();
        let c = ModelConfig::parse(br#"{"version_policy": {"all": {}}, "max_batch_size": 8}"#, &d).unwrap();
        assert_eq!(c.version_policy, VersionPolicy::All {});
        assert_eq!(c.batching.max_batch_size, 8);
        assert_eq!(c.batching.max_queue_size, d.max_queue_size);
        assert!(ModelConfig::parse(br#"{"max_batch": 8}"#, &d).unwrap_err().contains("unknown field"));
        assert!(ModelConfig::parse(br#"{"instances": 0}"#, &d).unwrap_err().starts_with("instances"));
    }
}

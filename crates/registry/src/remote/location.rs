//! Where a repository lives (`--repo`) and how its object store is reached.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::ClientConfigKey;

use super::Remote;
use crate::RegistryError;

/// A repository's location as given by `--repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder: a path, or a `file://` URL.
    Folder(PathBuf),
    /// `s3://bucket/prefix` (the prefix may be empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/`.
        prefix: String,
    },
}

/// How a remote store is reached.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Allow an `http://` endpoint (`AWS_ENDPOINT_URL`), whose requests and credentials'
    /// signatures travel in clear text. `AWS_ALLOW_HTTP=true` allows it too.
    pub allow_http: bool,
    /// AWS settings by their variable names (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …),
    /// applied over those of the environment.
    pub settings: Vec<(String, String)>,
}

impl Location {
    /// Parses `--repo`: `DIR`, `file://DIR` or `s3://bucket[/prefix]`.
    ///
    /// # Errors
    /// [`RegistryError::Location`] for another scheme, an empty bucket or a `file://` URL with
    /// a host.
    pub fn parse(text: &str) -> Result<Location, RegistryError> {
        let invalid = |message: &str| RegistryError::Location { location: text.to_string(), message: message.into() };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(Location::Folder(PathBuf::from(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(invalid("expected file:///absolute/path (a file URL has no host)"));
                }
                Ok(Location::Folder(PathBuf::from(rest)))
            }
            "s3" | "s3a" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid("expected s3://bucket[/prefix]"));
                }
                let prefix = prefix.trim_matches('/').to_string();
                if prefix.split('/').any(|p| p == "." || p == "..") {
                    return Err(invalid("the prefix may not hold '.' or '..' segments"));
                }
                Ok(Location::S3 { bucket: bucket.to_string(), prefix })
            }
            other => Err(invalid(&format!("unsupported scheme {other:?}: expected a folder, file:// or s3://"))),
        }
    }
}

impl Remote {
    /// Connects to `s3://bucket/prefix` with the usual AWS variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, …),
    /// conditional puts switched on (`If-None-Match`, as S3, MinIO, Ceph and R2 honour them).
    ///
    /// # Errors
    /// [`RegistryError::Location`] for a plain-HTTP endpoint that was not allowed, or a
    /// configuration the client refuses. Nothing is sent until the first call.
    pub fn s3(bucket: &str, prefix: &str, options: &RemoteOptions) -> Result<Remote, RegistryError> {
        let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        let invalid = |message: String| RegistryError::Location { location: url.clone(), message };
        // reqwest's rustls takes the process's provider; ring is the one Lathe builds.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder =
            AmazonS3Builder::from_env().with_bucket_name(bucket).with_conditional_put(S3ConditionalPut::ETagMatch);
        for (name, value) in &options.settings {
            let key: AmazonS3ConfigKey =
                name.to_ascii_lowercase().parse().map_err(|_| invalid(format!("unknown AWS setting {name}")))?;
            builder = builder.with_config(key, value);
        }
        if options.allow_http {
            builder = builder.with_allow_http(true);
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_default();
        let http_allowed = builder
            .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if endpoint.to_ascii_lowercase().starts_with("http://") && !http_allowed {
            return Err(invalid(format!(
                "the endpoint {endpoint} is plain HTTP; allow it with --s3-allow-http \
                 (LATHE_S3_ALLOW_HTTP=true) or AWS_ALLOW_HTTP=true"
            )));
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lathe-object-store")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("cannot start the object store's runtime: {e}")))?;
        Ok(Remote { store: Arc::new(store), prefix: prefix.to_string(), url, runtime: Some(runtime) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_by_scheme() {
        assert_eq!(Location::parse("models").unwrap(), Location::Folder("models".into()));
        assert_eq!(Location::parse("file:///srv/models").unwrap(), Location::Folder("/srv/models".into()));
        let s3 = Location::parse("s3://bucket/team/models/").unwrap();
        assert_eq!(s3, Location::S3 { bucket: "bucket".into(), prefix: "team/models".into() });
        let root = Location::parse("s3://bucket").unwrap();
        assert_eq!(root, Location::S3 { bucket: "bucket".into(), prefix: String::new() });
        for bad in ["gs://bucket", "s3:///prefix", "file://host/x", "s3://b/../x"] {
            let message = Location::parse(bad).unwrap_err().to_string();
            assert!(message.starts_with(bad), "{bad}: {message}");
        }
    }
}

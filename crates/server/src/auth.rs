//! API keys with scopes, checked on every request.
//!
//! Keys come from a keys file (JSON, holding only sha256 digests of the keys) and/or the
//! `LATHE_API_KEYS` environment variable; the file is re-read when it changes, so keys can be
//! added, rotated or revoked without a restart. Presented keys are hashed and compared with
//! every stored digest in constant time. Scopes: `admin` (everything), `infer` (inference and
//! reads), `read` (GET routes). Health probes need no key.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lathe_types::{ApiError, ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::HttpError;
use crate::routes::{access_for, Access};
use crate::state::AppState;

/// Who made a request: the key's name, or `anonymous` when keys are off.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Inference routes (and reads).
    Infer,
    /// GET routes: metadata, status, statistics, metrics.
    Read,
    /// Everything, including the repository, datasets and jobs.
    Admin,
}

impl Scope {
    /// The scope's name in keys files and `LATHE_API_KEYS`.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Infer => "infer",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "infer" => Some(Scope::Infer),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// One stored key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Who holds it (shown in logs and the audit trail; never the key itself).
    pub name: String,
    /// Hex sha256 of the key.
    pub sha256: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Seconds since the Unix epoch after which the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The keys file: `{"keys": [KeyEntry, …]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The keys.
    pub keys: Vec<KeyEntry>,
}

struct Loaded {
    keys: Vec<([u8; 32], KeyEntry)>,
    file_stamp: Option<SystemTime>,
}

/// The keys the server accepts.
pub struct KeyRing {
    file: Option<PathBuf>,
    env: Vec<KeyEntry>,
    loaded: RwLock<Loaded>,
}

/// Hex sha256 of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn decode_digest(digest: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(digest, &mut out).ok()?;
    Some(out)
}

/// Equality that takes the same time wherever the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Parses `LATHE_API_KEYS`: comma-separated `name:scope[+scope]:key` entries.
pub fn parse_env_keys(text: &str) -> Result<Vec<KeyEntry>, String> {
    let mut out = Vec::new();
    for (i, item) in text.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
        let mut parts = item.splitn(3, ':');
        let (Some(name), Some(scopes), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("LATHE_API_KEYS entry {i}: expected name:scope[+scope]:key"));
        };
        if key.len() < 16 {
            return Err(format!("LATHE_API_KEYS entry {i} ({name}): keys must have at least 16 characters"));
        }
        let scopes = scopes
            .split('+')
            .map(|s| {
                Scope::parse(s).ok_or_else(|| {
                    format!("LATHE_API_KEYS entry {i} ({name}): unknown scope {s:?}; expected infer, read or admin")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(KeyEntry { name: name.to_string(), sha256: hash_key(key), scopes, expires_at: None });
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<(Vec<KeyEntry>, Option<SystemTime>), String> {
    let stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: KeysFile = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((file.keys, stamp))
}

fn compile(entries: impl IntoIterator<Item = KeyEntry>) -> Result<Vec<([u8; 32], KeyEntry)>, String> {
    entries
        .into_iter()
        .map(|e| match decode_digest(&e.sha256) {
            Some(d) => Ok((d, e)),
            None => Err(format!("key {:?}: sha256 must be 64 hex characters", e.name)),
        })
        .collect()
}

impl KeyRing {
    /// Keys from an optional file and optional `LATHE_API_KEYS` text.
    pub fn load(file: Option<PathBuf>, env: Option<&str>) -> Result<KeyRing, String> {
        let env = env.map(parse_env_keys).transpose()?.unwrap_or_default();
        let (from_file, stamp) = match &file {
            Some(p) => read_file(p)?,
            None => (Vec::new(), None),
        };
        let keys = compile(env.iter().cloned().chain(from_file))?;
        Ok(KeyRing { file, env, loaded: RwLock::new(Loaded { keys, file_stamp: stamp }) })
    }

    /// No keys: every request is allowed (the server then listens on loopback only).
    pub fn open() -> KeyRing {
        KeyRing { file: None, env: Vec::new(), loaded: RwLock::new(Loaded { keys: Vec::new(), file_stamp: None }) }
    }

    /// Whether any key is configured.
    pub fn is_enabled(&self) -> bool {
        self.file.is_some() || !self.env.is_empty()
    }

    /// Re-reads the keys file if it changed; a broken file keeps the previous keys.
    pub fn reload_if_changed(&self) {
        let Some(path) = &self.file else { return };
        let stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if stamp == self.loaded.read().expect("keys lock").file_stamp {
            return;
        }
        match read_file(path).and_then(|(keys, stamp)| Ok((compile(self.env.iter().cloned().chain(keys))?, stamp))) {
            Ok((keys, stamp)) => {
                *self.loaded.write().expect("keys lock") = Loaded { keys, file_stamp: stamp };
                tracing::info!(file = %path.display(), "API keys reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "keeping the previous API keys"),
        }
    }

    /// The holder and scopes of `token`, if it is a current key.
    pub fn check(&self, token: &str) -> Option<(String, Vec<Scope>)> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let loaded = self.loaded.read().expect("keys lock");
        let mut found = None;
        for (d, e) in &loaded.keys {
            if constant_time_eq(d, &digest) && e.expires_at.is_none_or(|t| now < t) {
                found = Some((e.name.clone(), e.scopes.clone()));
            }
        }
        found
    }
}

fn grants(held: &[Scope], needed: Scope) -> bool {
    held.iter().any(|&s| s == needed || s == Scope::Admin || (s == Scope::Infer && needed == Scope::Read))
}

/// The key of an `Authorization: Bearer <key>` header, if one is sent.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

fn unauthorized(message: &str) -> Response {
    HttpError(ApiError::new(ErrorKind::Unauthenticated, message)).into_response()
}

/// Middleware: checks the bearer key against the route's scope.
pub async fn authorize(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    if !st.keys.is_enabled() {
        req.extensions_mut().insert(Actor("anonymous".into()));
        return next.run(req).await;
    }
    let routed = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let needed = match access_for(req.method(), routed, req.uri().path()) {
        Access::Needs(scope) => scope,
        // `access_for` resolves catch-alls to their forms; never let one through unchecked.
        Access::ByForm => Scope::Admin,
        Access::Open => {
            req.extensions_mut().insert(Actor("anonymous".into()));
            return next.run(req).await;
        }
    };
    let Some(token) = bearer_token(req.headers()) else {
        return unauthorized("missing API key: send the header Authorization: Bearer <key>");
    };
    match st.keys.check(token) {
        None => unauthorized("invalid, revoked or expired API key"),
        Some((name, scopes)) if !grants(&scopes, needed) => HttpError(ApiError::new(
            ErrorKind::PermissionDenied,
            format!(
                "the key {name:?} lacks the {} scope needed for {} {}",
                needed.name(),
                req.method(),
                req.uri().path()
            ),
        ))
        .into_response(),
        Some((name, _)) => {
            req.extensions_mut().insert(Actor(name));
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stronger_scopes_grant_weaker_ones() {
        assert!(
            grants(&[Scope::Infer], Scope::Read)
                && !grants(&[Scope::Read], Scope::Infer)
                && grants(&[Scope::Admin], Scope::Infer)
        );
    }

    #[test]
    fn env_keys_parse_and_check() {
        let ring = KeyRing::load(None, Some("ci:infer+read:0123456789abcdef0123")).unwrap();
        assert_eq!(ring.check("0123456789abcdef0123").unwrap().1, vec![Scope::Infer, Scope::Read]);
        assert!(ring.check("0123456789abcdef0124").is_none());
        assert!(parse_env_keys("x:root:0123456789abcdef").unwrap_err().contains("unknown scope"));
        assert!(parse_env_keys("x:admin:short").unwrap_err().contains("at least 16"));
    }
}

use std::fmt;
use std::str::FromStr;

/// A reference to a model as users type it: `NAME` (the latest version) or `NAME:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// Version number; `None` means the latest.
    pub version: Option<u64>,
}

/// Why a model reference or name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefError {
    /// The name is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid model name {0:?}: expected 1-128 characters from A-Z a-z 0-9 _ . - not starting with '.'")]
    InvalidName(String),
    /// The part after `:` is not a positive integer.
    #[error("invalid version {0:?} in model reference: expected a positive integer")]
    InvalidVersion(String),
}

impl ModelRef {
    /// Checks that `name` is usable as a model name (and as a directory name).
    pub fn validate_name(name: &str) -> Result<(), ModelRefError> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(())
        } else {
            Err(ModelRefError::InvalidName(name.to_string()))
        }
    }
}

impl FromStr for ModelRef {
    type Err = ModelRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = match s.split_once(':') {
            Some((name, v)) => {
                let version = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ModelRefError::InvalidVersion(v.to_string()))?;
                (name, Some(version))
            }
            None => (s, None),
        };
        Self::validate_name(name)?;
        Ok(ModelRef { name: name.to_string(), version })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_version() {
        let r: ModelRef = "mnist:3".parse().unwrap();
        assert_eq!(r.name, "mnist");
        assert_eq!(r.version, Some(3));
        assert_eq!(r.to_string(), "mnist:3");
        assert_eq!("mnist".parse::<ModelRef>().unwrap().version, None);
    }

    #[test]
    fn rejects_bad_references() {
        assert!("mnist:0".parse::<ModelRef>().is_err());
        assert!("mnist:x".parse::<ModelRef>().is_err());
        assert!("../etc".parse::<ModelRef>().is_err());
        assert!("".parse::<ModelRef>().is_err());
        assert!("a/b".parse::<ModelRef>().is_err());
    }
}

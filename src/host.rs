//! Host names and glob patterns over them (`--intercept`, `--passthrough`,
//! and the `host` of a rule's `match`): `*.example.com`, `api.*`, `*`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("`{pattern}` is not a valid host glob: {reason}")]
pub struct GlobError {
    pub pattern: String,
    pub reason: String,
}

/// A compiled set of host globs, matched case-insensitively.
#[derive(Debug, Clone)]
pub struct HostGlobs {
    set: GlobSet,
    patterns: Vec<String>,
}

impl HostGlobs {
    /// Compiles `patterns` once; matching does no compilation.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, GlobError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let glob = GlobBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| GlobError {
                    pattern: pattern.to_string(),
                    reason: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| GlobError {
            pattern: patterns
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            reason: e.to_string(),
        })?;
        Ok(Self {
            set,
            patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
        })
    }

    /// Matches every host.
    pub fn any() -> Self {
        Self::new(&["*"]).expect("`*` is a valid glob")
    }

    /// Matches no host.
    pub fn none() -> Self {
        Self::new::<&str>(&[]).expect("an empty set is valid")
    }

    /// Whether `host` (without port) matches one of the globs.
    pub fn is_match(&self, host: &str) -> bool {
        !self.patterns.is_empty() && self.set.is_match(host)
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_subdomains_case_insensitively() {
        let globs = HostGlobs::new(&["*.example.com", "pinned.test"]).expect("valid");
        assert!(globs.is_match("api.example.com"));
        assert!(globs.is_match("API.Example.COM"));
        assert!(globs.is_match("pinned.test"));
        assert!(!globs.is_match("example.com"));
        assert!(!globs.is_match("other.test"));
        assert!(!HostGlobs::none().is_match("a"));
        assert!(HostGlobs::any().is_match("a.b"));
    }
}

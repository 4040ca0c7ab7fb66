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

/// A compiled set of host globs, matched case-insensitively. The common
/// shapes (`*`, `api.example.com`, `*.example.com`) are matched by string
/// comparison; the rest by a compiled glob set.
#[derive(Debug, Clone)]
pub struct HostGlobs {
    set: GlobSet,
    patterns: Vec<String>,
    simple: Vec<Simple>,
    has_complex: bool,
}

/// A glob whose meaning is a plain string test.
#[derive(Debug, Clone)]
enum Simple {
    Any,
    /// The whole host, lowercase.
    Exact(String),
    /// `*.example.com`: a host ending in `.example.com` (lowercase). A glob
    /// `*` may match nothing, so `.example.com` itself matches, as in
    /// globset.
    Suffix(String),
}

fn is_plain(s: &str) -> bool {
    !s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

fn simple(pattern: &str) -> Option<Simple> {
    if pattern == "*" {
        return Some(Simple::Any);
    }
    if is_plain(pattern) {
        return Some(Simple::Exact(pattern.to_ascii_lowercase()));
    }
    let rest = pattern.strip_prefix('*')?;
    is_plain(rest).then(|| Simple::Suffix(rest.to_ascii_lowercase()))
}

impl HostGlobs {
    /// Compiles `patterns` once; matching does no compilation.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, GlobError> {
        let mut builder = GlobSetBuilder::new();
        let mut simples = Vec::new();
        let mut has_complex = false;
        for pattern in patterns {
            let pattern = pattern.as_ref();
            match simple(pattern) {
                Some(s) => simples.push(s),
                None => has_complex = true,
            }
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
            simple: simples,
            has_complex,
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
        let simple_match = self.simple.iter().any(|s| match s {
            Simple::Any => true,
            Simple::Exact(exact) => host.eq_ignore_ascii_case(exact),
            Simple::Suffix(suffix) => {
                host.len() >= suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        });
        simple_match || (self.has_complex && self.set.is_match(host))
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

    proptest::proptest! {
        #[test]
        fn the_string_fast_path_agrees_with_the_glob_set(
            host in "[a-zA-Z0-9.-]{0,20}",
            pattern in "(\\*|\\*\\.[a-z]{1,4}(\\.[a-z]{1,3})?|[a-z]{1,4}\\.[a-z]{1,3}|[a-z]{1,3}\\*)",
        ) {
            let fast = HostGlobs::new(&[pattern.as_str()]).expect("valid");
            let slow = GlobSetBuilder::new()
                .add(GlobBuilder::new(&pattern).case_insensitive(true).build().expect("glob"))
                .build()
                .expect("set");
            proptest::prop_assert_eq!(fast.is_match(&host), slow.is_match(&host));
        }
    }
}

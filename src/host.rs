//! Host names and glob patterns over them (`--intercept`, `--passthrough`,
//! and the `host` of a rule's `match`): `*.example.com`, `api.*`, `*`.

use std::collections::HashMap;

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

/// Which of many host-glob sets (one per rule) can match a host, found
/// with a few hash lookups instead of trying every set: with hundreds of
/// rules, trying each one's globs in turn touched each rule's memory on
/// every request. Only the string shapes are indexed; a set with another
/// glob, or none (no `host` in the rule), is always a candidate. Whoever
/// uses it still matches the candidates themselves: the index only rules
/// sets out.
#[derive(Debug, Clone, Default)]
pub struct HostIndex {
    sets: usize,
    /// Sets that may match any host.
    always: Vec<usize>,
    /// Lowercase host → sets with that exact pattern.
    exact: HashMap<String, Vec<usize>>,
    /// For each suffix length: lowercase suffix → sets with `*suffix`.
    suffixes: Vec<(usize, HashMap<String, Vec<usize>>)>,
}

/// The sets a host may match: one bit per set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates(Vec<u64>);

impl Candidates {
    fn none(sets: usize) -> Self {
        Self(vec![0; sets.div_ceil(64)])
    }

    fn add(&mut self, set: usize) {
        self.0[set / 64] |= 1 << (set % 64);
    }

    /// Whether set `set` may match (the tests check `iter` against it).
    #[cfg(test)]
    fn contains(&self, set: usize) -> bool {
        self.0
            .get(set / 64)
            .is_some_and(|word| word & (1 << (set % 64)) != 0)
    }

    /// The sets that may match, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(at, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    at * 64 + bit
                })
            })
        })
    }
}

impl HostIndex {
    /// Indexes `sets` in order; `None` is a set without host globs (any
    /// host may match).
    pub fn new<'a>(sets: impl IntoIterator<Item = Option<&'a HostGlobs>>) -> Self {
        let mut index = Self::default();
        for (set, globs) in sets.into_iter().enumerate() {
            index.sets = set + 1;
            let Some(globs) = globs.filter(|g| !g.has_complex) else {
                index.always.push(set);
                continue;
            };
            for simple in &globs.simple {
                match simple {
                    Simple::Any => index.always.push(set),
                    Simple::Exact(exact) => index.exact.entry(exact.clone()).or_default().push(set),
                    Simple::Suffix(suffix) => index
                        .suffixes_of_len(suffix.len())
                        .entry(suffix.clone())
                        .or_default()
                        .push(set),
                }
            }
        }
        index
    }

    /// The suffixes of `len` bytes, made on first use.
    fn suffixes_of_len(&mut self, len: usize) -> &mut HashMap<String, Vec<usize>> {
        let at = match self.suffixes.iter().position(|(l, _)| *l == len) {
            Some(at) => at,
            None => {
                self.suffixes.push((len, HashMap::new()));
                self.suffixes.len() - 1
            }
        };
        &mut self.suffixes[at].1
    }

    /// The sets `host` (without port) may match.
    pub fn candidates(&self, host: &str) -> Candidates {
        let mut found = Candidates::none(self.sets);
        for &set in &self.always {
            found.add(set);
        }
        if self.exact.is_empty() && self.suffixes.is_empty() {
            return found;
        }
        // ASCII lowercasing keeps every byte where it was, so the tests
        // below are `HostGlobs::is_match`'s string tests.
        let host = host.to_ascii_lowercase();
        let exact = self.exact.get(&host);
        let suffixes = self.suffixes.iter().filter_map(|(len, by_suffix)| {
            let start = host.len().checked_sub(*len)?;
            host.is_char_boundary(start)
                .then(|| by_suffix.get(&host[start..]))
                .flatten()
        });
        for sets in exact.into_iter().chain(suffixes) {
            for &set in sets {
                found.add(set);
            }
        }
        found
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

    #[test]
    fn the_index_finds_exact_suffix_any_and_complex_sets() {
        let sets = [
            Some(HostGlobs::new(&["api.example.com"]).expect("valid")),
            Some(HostGlobs::new(&["*.example.com", "other.test"]).expect("valid")),
            None,
            Some(HostGlobs::new(&["api-*.example.com"]).expect("valid")),
            Some(HostGlobs::any()),
            Some(HostGlobs::new(&["*-v2.example.com"]).expect("valid")),
            Some(HostGlobs::none()),
        ];
        let index = HostIndex::new(sets.iter().map(Option::as_ref));
        let found = |host: &str| {
            let candidates = index.candidates(host);
            let listed: Vec<usize> = candidates.iter().collect();
            let tested: Vec<usize> = (0..sets.len())
                .filter(|&i| candidates.contains(i))
                .collect();
            assert_eq!(listed, tested, "iter lists what contains says, in order");
            listed
        };
        // Always: no globs (2), a complex glob (3), `*` (4).
        assert_eq!(found("API.Example.com"), [0, 1, 2, 3, 4]);
        assert_eq!(found("orders-v2.example.com"), [1, 2, 3, 4, 5]);
        assert_eq!(found("other.test"), [1, 2, 3, 4]);
        assert_eq!(found("elsewhere.test"), [2, 3, 4]);
        assert_eq!(found(""), [2, 3, 4]);
        assert!(!index.candidates("x").contains(64), "beyond the sets");

        // More sets than one word of bits.
        let many: Vec<HostGlobs> = (0..70)
            .map(|i| HostGlobs::new(&[format!("h{i}.test")]).expect("valid"))
            .collect();
        let index = HostIndex::new(many.iter().map(Some));
        let candidates = index.candidates("H65.test");
        assert_eq!(candidates.iter().collect::<Vec<_>>(), [65]);
        assert_eq!(
            (0..70)
                .filter(|&i| candidates.contains(i))
                .collect::<Vec<_>>(),
            [65]
        );
    }

    proptest::proptest! {
        #[test]
        fn the_index_never_rules_out_a_set_that_matches(
            host in "[a-zA-Z0-9.-]{0,12}",
            patterns in proptest::collection::vec(
                proptest::collection::vec("(\\*|\\*\\.[a-zA-Z]{1,3}|[a-zA-Z]{1,3}\\.[a-z]{1,2}|[a-z]{1,2}\\*|\\*[a-z]{0,2}\\.[a-z]{1,2}|[a-z]\\?)", 0..3),
                1..24,
            ),
        ) {
            let sets: Vec<HostGlobs> = patterns
                .iter()
                .map(|p| HostGlobs::new(p).expect("valid"))
                .collect();
            let candidates = HostIndex::new(sets.iter().map(Some)).candidates(&host);
            for (i, set) in sets.iter().enumerate() {
                if set.is_match(&host) {
                    proptest::prop_assert!(candidates.contains(i), "set {} {:?} matches {:?}", i, set.patterns(), host);
                }
            }
        }

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

//! A rule's `when`: whether an exchange the rule owns is perturbed. The
//! counters are per rule and exact under concurrency (atomics); the
//! `probability` draws are numbered, so the same seed gives the same number
//! of firings over the same number of exchanges, in any interleaving.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::load::parse_duration;
use super::schema::WhenSpec;
use crate::credential::Fingerprint;

/// How many credentials `idle` remembers per rule before starting over.
const IDLE_MEMORY: usize = 100_000;

/// A compiled `when`.
#[derive(Debug, Clone, Default)]
pub struct When {
    after_requests: Option<u64>,
    after: Option<Duration>,
    idle: Option<Duration>,
    probability: Option<f64>,
    times: Option<u64>,
}

/// A rule's counters and memory.
#[derive(Debug, Default)]
pub struct State {
    /// Exchanges the rule owned.
    pub matched: AtomicU64,
    /// Exchanges whose `when` held.
    pub fired: AtomicU64,
    draws: AtomicU64,
    last_seen: Mutex<HashMap<Fingerprint, Instant>>,
}

impl State {
    /// Resets the counters (`POST /reset`); the `idle` memory stays.
    pub fn reset(&self) {
        self.matched.store(0, Ordering::SeqCst);
        self.fired.store(0, Ordering::SeqCst);
        self.draws.store(0, Ordering::SeqCst);
    }
}

impl When {
    /// Compiles `spec`; `load` has already checked its durations.
    pub fn compile(spec: &WhenSpec) -> Self {
        Self {
            after_requests: spec.after_requests,
            after: spec.after.as_deref().and_then(parse_duration),
            idle: spec.idle.as_deref().and_then(parse_duration),
            probability: spec.probability,
            times: spec.times,
        }
    }

    /// Counts one owned exchange and decides whether it fires. `token` is
    /// the credential (hashed only when `idle` needs it). Every condition
    /// given must hold; `times` is checked last, so only real firings use it
    /// up.
    pub fn decide(
        &self,
        state: &State,
        loaded_at: Instant,
        token: Option<&str>,
        seed: u64,
        salt: u64,
    ) -> bool {
        let now = Instant::now();
        let nth = state.matched.fetch_add(1, Ordering::SeqCst);
        // Seen now, whatever else decides: idleness is measured from the
        // credential's previous appearance.
        let was_idle = self.idle.map(|idle| {
            let Some(fingerprint) = token.map(Fingerprint::of) else {
                return false;
            };
            let mut seen = state
                .last_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.len() >= IDLE_MEMORY {
                seen.clear();
            }
            let previous = seen.insert(fingerprint, now);
            previous.is_some_and(|at| now.duration_since(at) >= idle)
        });
        if self.after_requests.is_some_and(|n| nth < n) {
            return false;
        }
        if self
            .after
            .is_some_and(|after| now.duration_since(loaded_at) < after)
        {
            return false;
        }
        if was_idle == Some(false) {
            return false;
        }
        if let Some(p) = self.probability {
            let draw = state.draws.fetch_add(1, Ordering::SeqCst);
            if unit(seed, salt, draw) >= p {
                return false;
            }
        }
        match self.times {
            None => {
                state.fired.fetch_add(1, Ordering::SeqCst);
                true
            }
            Some(times) => state
                .fired
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |fired| {
                    (fired < times).then_some(fired + 1)
                })
                .is_ok(),
        }
    }
}

/// A number in [0, 1) from (seed, salt, draw): splitmix64, so draws are
/// independent of one another and of thread timing.
fn unit(seed: u64, salt: u64, draw: u64) -> f64 {
    let mut z = seed ^ salt.rotate_left(17) ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A stable salt per rule name, so rules with one seed draw differently.
pub fn salt(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when(spec: serde_json::Value) -> When {
        When::compile(&serde_json::from_value(spec).expect("when spec"))
    }

    fn fire_count(w: &When, n: usize, seed: u64) -> usize {
        let state = State::default();
        let loaded = Instant::now();
        (0..n)
            .filter(|_| w.decide(&state, loaded, None, seed, salt("r")))
            .count()
    }

    #[test]
    fn after_requests_lets_the_first_ones_through_and_times_caps_the_firings() {
        let w = when(serde_json::json!({"after_requests": 3, "times": 2}));
        let state = State::default();
        let loaded = Instant::now();
        let fired: Vec<bool> = (0..7)
            .map(|_| w.decide(&state, loaded, None, 0, 0))
            .collect();
        assert_eq!(fired, [false, false, false, true, true, false, false]);
        assert_eq!(state.matched.load(Ordering::SeqCst), 7);
        assert_eq!(state.fired.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn probability_with_a_seed_gives_the_same_count_every_time() {
        let w = when(serde_json::json!({"probability": 0.25}));
        let first = fire_count(&w, 1000, 42);
        assert_eq!(first, fire_count(&w, 1000, 42));
        assert!((200..300).contains(&first), "{first} of 1000 at p=0.25");
        assert_ne!(
            first,
            fire_count(&w, 1000, 43),
            "another seed, another draw"
        );
    }

    #[test]
    fn probability_counts_are_exact_under_concurrency() {
        let w = std::sync::Arc::new(when(serde_json::json!({"probability": 0.5, "times": 300})));
        let expected = fire_count(&w, 800, 7);
        let state = std::sync::Arc::new(State::default());
        let loaded = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (w, state) = (w.clone(), state.clone());
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| w.decide(&state, loaded, None, 7, salt("r")))
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(total, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn after_waits_from_load_time() {
        let w = when(serde_json::json!({"after": "30s"}));
        let state = State::default();
        let loaded = Instant::now();
        assert!(!w.decide(&state, loaded, None, 0, 0));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(w.decide(&state, loaded, None, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_fires_only_for_a_credential_unseen_that_long() {
        let w = when(serde_json::json!({"idle": "5m"}));
        let state = State::default();
        let loaded = Instant::now();
        let a = Some("token-a");
        assert!(
            !w.decide(&state, loaded, a, 0, 0),
            "first sighting is not idle"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!w.decide(&state, loaded, a, 0, 0), "seen a minute ago");
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(w.decide(&state, loaded, a, 0, 0), "unseen for over 5m");
        assert!(!w.decide(&state, loaded, Some("token-b"), 0, 0));
    }
}

//! Reloading rules: `Reloader` loads and compiles the rule paths again and
//! swaps the new set in whole (no request sees half of each); `watch` does
//! it when a rule file changes. An invalid change keeps the old rules and
//! logs every problem with its position.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::load::{self, LoadError};
use super::set::RuleSet;

/// How long to wait for an editor's burst of writes to settle.
const SETTLE: Duration = Duration::from_millis(150);

/// Loads the rule paths again and swaps the result in.
pub struct Reloader {
    paths: Vec<PathBuf>,
    seed: u64,
    target: Arc<ArcSwap<RuleSet>>,
    attempts: AtomicU64,
    reloads: AtomicU64,
    changes: Option<tokio::sync::broadcast::Sender<()>>,
}

impl Reloader {
    /// A reloader for `paths` that swaps into `target`.
    pub fn new(paths: Vec<PathBuf>, seed: u64, target: Arc<ArcSwap<RuleSet>>) -> Self {
        Self {
            paths,
            seed,
            target,
            attempts: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            changes: None,
        }
    }

    /// Also tells `changes` of each successful reload.
    #[must_use]
    pub fn notify(mut self, changes: tokio::sync::broadcast::Sender<()>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// Loads, checks and compiles the files; on success swaps them in,
    /// keeping the active scenario when the new files still define it.
    /// Blocking file I/O: call it off the async runtime.
    pub fn reload(&self) -> Result<usize, Vec<LoadError>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let env = |name: &str| std::env::var(name).ok();
        let result = load::load(&self.paths, &env)
            .and_then(|files| RuleSet::compile(&files, &env, self.seed));
        match result {
            Ok(set) => {
                let count = install(&self.target, set);
                self.reloads.fetch_add(1, Ordering::SeqCst);
                if let Some(changes) = &self.changes {
                    let _ = changes.send(());
                }
                tracing::info!("rules reloaded: {count} rule(s)");
                Ok(count)
            }
            Err(errors) => {
                for error in &errors {
                    tracing::warn!("{error}");
                }
                tracing::warn!(
                    "rule reload refused ({} problem(s)); the previous rules stay",
                    errors.len()
                );
                Err(errors)
            }
        }
    }

    /// How many reloads were tried.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// How many reloads succeeded.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::SeqCst)
    }
}

/// Swaps `set` in whole, keeping the active scenario when `set` still
/// defines it; returns its number of rules. File reloads and the admin
/// API's `PUT /rules` both come here.
pub fn install(target: &ArcSwap<RuleSet>, set: RuleSet) -> usize {
    let count = set.rules().len();
    if let Some(scenario) = target.load().scenario()
        && set.set_scenario(Some(&scenario)).is_err()
    {
        tracing::warn!("scenario `{scenario}` is gone from the new rules; it is switched off");
    }
    target.store(Arc::new(set));
    count
}

/// Compiles rules sent as text (YAML, or JSON, which is YAML too) and swaps
/// them in like a file reload; an invalid text changes nothing.
pub fn replace_from_text(
    target: &ArcSwap<RuleSet>,
    text: &str,
    seed: u64,
) -> Result<usize, Vec<LoadError>> {
    let env = |name: &str| std::env::var(name).ok();
    let parsed = load::parse_text(Path::new("PUT /rules"), text, &env)?;
    let set = RuleSet::compile(&[parsed], &env, seed)?;
    let count = install(target, set);
    tracing::info!("rules replaced through the admin API: {count} rule(s)");
    Ok(count)
}

/// Whether a change at `changed` touches one of `paths` (a file, or a folder
/// and anything in it).
fn concerns(paths: &[PathBuf], changed: &Path) -> bool {
    paths.iter().any(|p| changed.starts_with(p))
}

/// A running file watcher; dropping it stops watching.
pub struct Watch {
    _watcher: RecommendedWatcher,
}

/// Watches the reloader's paths and reloads when one of them changes.
/// Files are watched through their folder: editors often replace a file
/// rather than write it, which a watch on the file itself would miss.
pub fn watch(reloader: Arc<Reloader>) -> notify::Result<Watch> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    for path in &reloader.paths {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let folder = if absolute.is_dir() {
            absolute.clone()
        } else {
            absolute
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    }
    let absolute_paths: Vec<PathBuf> = reloader
        .paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut relevant = concerns(&absolute_paths, &first);
            tokio::time::sleep(SETTLE).await;
            while let Ok(more) = rx.try_recv() {
                relevant |= concerns(&absolute_paths, &more);
            }
            if !relevant {
                continue;
            }
            let reloader = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    });
    Ok(Watch { _watcher: watcher })
}

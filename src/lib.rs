//! authfault: an intercepting HTTP(S) forward proxy that perturbs
//! credentials, for testing what clients and APIs do when one goes bad.
//!
//! The modules, from the edge inwards:
//!
//! - `cli`: subcommands and flags into one checked configuration.
//! - `admin`: the admin API (scenarios, rules, report, exchanges, metrics).
//! - `metrics`: the Prometheus metrics the recorder counts into.
//! - `proxy`: the listener, CONNECT interception and tunnels, the exchange
//!   pipeline and the pooled upstream client.
//! - `tls`: the CA on disk, leaf minting and the per-host config cache.
//! - `record`: what is kept of each exchange: the body tap, the recorder
//!   thread that judges, masks, logs and writes it.
//! - `report`: the verdict summary and the text, JSON, JUnit and HAR reports.
//! - `verdict`: expectations and how a response is judged.
//! - `host`: host globs shared by flags and rules.
//! - `logging`: text or JSON lines on stderr.
//!
//! The life of one exchange: `proxy::listener` accepts a client; a CONNECT
//! goes to `proxy::connect`, which answers 200, peeks, and either tunnels
//! the bytes or terminates TLS with a leaf from `tls::LeafCache` and serves
//! the decrypted HTTP/1.1 or HTTP/2. Each request, plain or decrypted, goes
//! through `proxy::exchange::handle`: target URI, checks, hop-by-hop headers
//! removed, `proxy::upstream` sends it; the response streams back through
//! `record::Tap`, which hands the exchange to the `record::Recorder` when
//! the body ends.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod credential;
pub mod exec;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod host;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod perturb;
pub mod proxy;
pub mod record;
pub mod report;
pub mod rules;
pub mod tls;
pub mod verdict;

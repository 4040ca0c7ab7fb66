//! Integration tests: one binary, a module per area. Every test starts the
//! real proxy (in-process, or the built binary for the CLI) against real
//! upstreams on 127.0.0.1.

mod admin;
mod cli;
mod connect;
mod errors;
mod examples;
mod exec;
mod faults;
mod forward;
mod fuzz_regressions;
mod limits;
mod perturb;
mod record;
mod static_binary;
mod support;
mod ui;

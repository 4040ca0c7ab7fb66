//! Memory: the proxy's RSS idle, its growth while 1 GiB streams up and
//! down through an intercepted connection, and with 5,000 idle intercepted
//! client connections open.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::client::Route;
use crate::{Bench, mib};

const GIB: u64 = 1024 * 1024 * 1024;

/// One line of the memory table.
pub struct Row {
    pub what: String,
    pub mib: f64,
    pub note: String,
}

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();

    let proxy = bench.proxy("memory-idle", &[])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rows.push(Row {
        what: "idle, peak RSS".into(),
        mib: mib(proxy.peak_rss()?),
        note: "started, no traffic".into(),
    });
    drop(proxy);

    for upload in [true, false] {
        let proxy = bench.proxy("memory-stream", &[])?;
        let route = Route::proxied(proxy.addr, &bench.upstream, &proxy.ca_pem)?;
        let mut conn = route.https1().await?;
        conn.get("/small").await?;
        let before = proxy.rss()?;
        let peak = Rc::new(Cell::new(before));
        let sampler = {
            let peak = peak.clone();
            let pid = proxy.pid();
            tokio::task::spawn_local(async move {
                loop {
                    if let Ok(rss) = crate::process::rss_of(pid) {
                        peak.set(peak.get().max(rss));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let started = Instant::now();
        let moved = if upload {
            conn.upload(GIB).await?
        } else {
            conn.get(&format!("/stream?bytes={GIB}")).await?
        };
        let secs = started.elapsed().as_secs_f64();
        sampler.abort();
        let moved_ok = if upload {
            // The upstream answers with the byte count it read.
            moved > 0
        } else {
            moved == GIB
        };
        anyhow::ensure!(
            moved_ok,
            "the 1 GiB transfer came out short ({moved} bytes)"
        );
        let growth = peak.get().saturating_sub(before);
        rows.push(Row {
            what: format!(
                "1 GiB {}, RSS growth",
                if upload { "upload" } else { "download" }
            ),
            mib: mib(growth),
            note: format!(
                "{:.0} MiB/s, HTTPS intercepted, HTTP/1.1; RSS {:.1} → peak {:.1} MiB",
                1024.0 / secs,
                mib(before),
                mib(peak.get())
            ),
        });
    }

    for is_tls in [false, true] {
        rows.push(idle_connections(bench, is_tls).await?);
    }
    Ok(rows)
}

/// RSS with `--conns` client connections open, each after one request:
/// plain keep-alive, or CONNECT + TLS.
async fn idle_connections(bench: &Bench, is_tls: bool) -> anyhow::Result<Row> {
    let connections = bench.options.idle_connections;
    let proxy = bench.proxy("memory-conns", &[])?;
    let route = Route::proxied(proxy.addr, &bench.upstream, &proxy.ca_pem)?;
    route.https1().await?.get("/small").await?;
    route.http1().await?.get("/small").await?;
    let before = proxy.rss()?;
    let mut open = Vec::with_capacity(connections);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while open.len() < connections {
        while started < connections && pending.len() < 64 {
            let route = route.clone();
            pending.spawn_local(async move {
                let mut conn = if is_tls {
                    route.https1().await?
                } else {
                    route.http1().await?
                };
                conn.get("/small").await?;
                anyhow::Ok(conn)
            });
            started += 1;
        }
        match pending.join_next().await {
            Some(done) => open.push(done??),
            None => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = proxy.rss()?;
    drop(open);
    let (kind, how) = if is_tls {
        ("intercepted HTTPS", "CONNECT + TLS")
    } else {
        ("plain HTTP", "keep-alive")
    };
    Ok(Row {
        what: format!("{connections} idle {kind} connections, RSS"),
        mib: mib(with),
        note: format!(
            "{how}, one request each, then idle; {:.1} KiB per connection over {:.1} MiB",
            with.saturating_sub(before) as f64 / 1024.0 / connections as f64,
            mib(before)
        ),
    })
}

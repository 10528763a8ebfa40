//! `/metrics` scraped by a real Prometheus server (Debian's `prometheus` package, installed by
//! `.ci/run`): the scrape succeeds (target `up`, no error), and the figures Prometheus stored
//! are those of the statistics.
//!
//! Skips (with a message) when `/usr/bin/prometheus` is missing, unless
//! `FATHOMETER_REQUIRE_PROMETHEUS=1`, which turns a missing server into a failure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::{free_port, get};
use crate::support::{bin, scenario, stop, write_config};

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn prometheus_available() -> bool {
    if Path::new(PROMETHEUS).exists() {
        return true;
    }
    if std::env::var("FATHOMETER_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
        panic!(
            "{PROMETHEUS} is missing and FATHOMETER_REQUIRE_PROMETHEUS=1 (apt-get install prometheus)"
        );
    }
    eprintln!(
        "SKIPPED Prometheus test: {PROMETHEUS} not found (apt-get install prometheus; set \
         FATHOMETER_REQUIRE_PROMETHEUS=1 to make this a failure)"
    );
    false
}

/// Stops a child process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(5));
    }
}

/// An instant query against Prometheus' HTTP API: the first sample's value.
fn query(port: u16, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let response = get(port, &format!("/api/v1/query?query={encoded}"), "");
    let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    let value = body["data"]["result"].get(0)?["value"][1].as_str()?;
    value.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_metrics_cleanly() {
    if !prometheus_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, prom_port, closed) = (free_port(), free_port(), free_port());
    let extra = format!("[smtp]\nport = {closed}\n[discovery]\nrequests = false\n");
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), &extra);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    scenario::import(dir.path(), &config, now);
    let _daemon = Running(
        bin().arg("run").arg("--config").arg(&config).stderr(Stdio::null()).spawn().unwrap(),
    );

    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n\
             scrape_configs:\n  - job_name: fathometer\n    static_configs:\n\
             \x20     - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Running(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", prometheus_config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Wait for a scrape: the target's health is "up" with no error, or the test fails with
    // Prometheus' own words.
    let start = Instant::now();
    let target = loop {
        let targets = std::net::TcpStream::connect(("127.0.0.1", prom_port))
            .ok()
            .map(|_| get(prom_port, "/api/v1/targets", ""))
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok());
        let target = targets.and_then(|t| t["data"]["activeTargets"].get(0).cloned());
        // A scrape before the daemon listened leaves the target "down" for a moment: wait
        // for a good one rather than judging the first.
        if let Some(t) = &target
            && t["health"] == "up"
            && t["lastError"] == ""
            && query(prom_port, "fathometer_remailer_reliability").is_some()
        {
            break t.clone();
        }
        let waited = start.elapsed();
        if waited > Duration::from_secs(40) {
            let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap();
            panic!("no good scrape within {waited:?}: {target:?}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    assert_eq!(query(prom_port, "up{job=\"fathometer\"}"), Some(1.0));

    // The stored figures are the statistics' (scenario: testmix1 at 100 %, testmix2 just
    // over 98 %, 12 minutes' median latency for testmix1).
    let reliability = |nick: &str| {
        query(
            prom_port,
            &format!("fathometer_remailer_reliability{{list=\"mix\",nick=\"{nick}\"}}"),
        )
    };
    assert_eq!(reliability("testmix1"), Some(1.0));
    let testmix2 = reliability("testmix2").unwrap();
    assert!((0.98..0.99).contains(&testmix2), "{testmix2}");
    assert_eq!(
        query(
            prom_port,
            "fathometer_remailer_latency_median_seconds{list=\"mix\",nick=\"testmix1\"}"
        ),
        Some(720.0)
    );
    // Hidden and testing remailers stay private.
    assert_eq!(reliability("hidden"), None);
    assert_eq!(reliability("tester"), None);
    assert_eq!(query(prom_port, "fathometer_ingester_up"), Some(1.0));
}

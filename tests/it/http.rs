//! The daemon's built-in HTTP server, tested through the real binary over loopback.

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::{free_port, get};
use crate::support::*;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(5));
    }
}

/// A remailer's reply body that a browser would run if it were served as HTML.
const HOSTILE_REPLY: &str = "<html><script>alert(1)</script> from ";

#[test]
fn serves_lists_api_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config =
        write_config(dir.path(), &format!("127.0.0.1:{port}"), "[stats]\nmodel = \"echolot\"\n");
    // A history whose pings are recent enough to be in the daemon's window.
    let now = chrono_now();
    let mut csv = String::new();
    for i in 1..40 {
        let sent = now - i * 7200;
        csv.push_str(&format!("fast@one.example,mix,{sent},{}\n", sent + 600));
        csv.push_str(&format!("hidden@two.example,mix,{sent},{}\n", sent + 900));
        csv.push_str(&format!("yamn@three.example,yamn,{sent},{}\n", sent + 1200));
    }
    let pings = dir.path().join("p.csv");
    std::fs::write(&pings, csv).unwrap();
    let remailers = dir.path().join("r.csv");
    std::fs::write(&remailers, "hidden@two.example,hidden,,0\n").unwrap();
    run_ok(
        bin()
            .arg("--config")
            .arg(&config)
            .arg("import-pings")
            .arg("--pings")
            .arg(&pings)
            .arg("--remailers")
            .arg(&remailers),
    );
    // A conf reply of each remailer, stored as the ingester stores one, for the thesaurus;
    // the listed remailer's is hostile HTML, which must reach clients as inert text.
    let conn = crate::support::state_db(dir.path());
    conn.execute(
        "INSERT INTO replies (remailer_id, kind, received_at, body)
         SELECT id, 'conf', ?1, ?2 || address FROM remailers",
        rusqlite::params![now - 3600, HOSTILE_REPLY],
    )
    .unwrap();
    drop(conn);
    let _daemon = Daemon(
        bin().arg("run").arg("--config").arg(&config).stderr(Stdio::null()).spawn().unwrap(),
    );
    let start = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(port, "/healthz", "").status == 200
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "daemon not healthy in time");
        std::thread::sleep(Duration::from_millis(100));
    }

    let health = get(port, "/healthz", "");
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert!(health.text().contains("\"status\":\"ok\""), "{}", health.text());

    let mlist = get(port, "/mlist.txt", "");
    assert_eq!(mlist.status, 200);
    assert_eq!(mlist.header("content-type"), Some("text/plain; charset=utf-8"));
    let on_disk = std::fs::read(dir.path().join("state/results/mlist.txt")).unwrap();
    assert_eq!(mlist.body, on_disk);
    assert!(mlist.text().contains("fast           "), "{}", mlist.text());
    assert!(!mlist.text().contains("hidden"), "hidden remailer in public list");
    assert!(!mlist.text().contains("yamn@"), "the YAMN remailer has its own list");
    let etag = mlist.header("etag").expect("etag").to_owned();
    assert!(mlist.header("last-modified").is_some_and(|d| d.ends_with(" GMT")));
    let again = get(port, "/mlist.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    // The same freshness (max-age counts down: a second may tick between the two requests).
    let max_age = |r: &crate::support::http::HttpResponse| -> i64 {
        r.header("cache-control")
            .and_then(|c| c.strip_prefix("public, max-age="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(-100)
    };
    assert!((max_age(&mlist) - max_age(&again)).abs() <= 1, "{:?}", again.header("cache-control"));
    // In the API, in its own list.
    let api: serde_json::Value =
        serde_json::from_slice(&get(port, "/api/v1/remailers", "").body).unwrap();
    assert_eq!(api["lists"]["yamn"][0]["nick"], "yamn", "{api:#}");
    let one: serde_json::Value =
        serde_json::from_slice(&get(port, "/api/v1/remailers/yamn", "").body).unwrap();
    assert_eq!(one["yamn"]["pings_returned"], 39, "{one:#}");
    // The YAMN tree, served where a YAMN client's stats URL points.
    let yamn = get(port, "/yamn/mlist2.txt", "");
    assert_eq!(yamn.status, 200, "{}", yamn.text());
    assert!(
        yamn.text().lines().any(|l| l.starts_with("yamn ") && l.contains("100.0%")),
        "{}",
        yamn.text()
    );
    // A copy stays fresh until the next rebuild: Expires is Last-Modified plus the interval
    // (5 minutes for the lists, 8 hours for the keyrings), what Echolot's .meta files said.
    for (path, interval) in [("/mlist.txt", 300), ("/index.html", 300), ("/pubring.mix", 28_800)] {
        let r = get(port, path, "");
        let date = |name| {
            let value = r.header(name).unwrap_or_else(|| panic!("{path}: no {name}"));
            chrono::DateTime::parse_from_rfc2822(value).unwrap().timestamp()
        };
        assert_eq!(date("expires") - date("last-modified"), interval, "{path}");
        let max_age: i64 = r
            .header("cache-control")
            .and_then(|c| c.strip_prefix("public, max-age="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{path}: {:?}", r.header("cache-control")));
        assert!((interval - 60..=interval).contains(&max_age), "{path}: max-age {max_age}");
    }

    for path in ["/rlist.txt", "/mlist2.txt", "/rlist2.txt"] {
        assert_eq!(get(port, path, "").status, 200, "{path}");
    }
    for path in ["/nothing.txt", "/..%2Fsecret", "/.mlist.txt.tmp", "/fathometer.sqlite"] {
        assert_eq!(get(port, path, "").status, 404, "{path}");
    }

    let api = get(port, "/api/v1/remailers", "");
    assert_eq!(api.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(json["model"], "echolot");
    let mix = json["lists"]["mix"].as_array().unwrap();
    assert_eq!(mix.len(), 1, "hidden remailers are not exposed: {json}");
    assert_eq!(mix[0]["nick"], "fast");
    assert_eq!(mix[0]["latency_median_s"], 600.0);
    let one = get(port, "/api/v1/remailers/fast", "");
    assert_eq!(one.status, 200);
    assert_eq!(get(port, "/api/v1/remailers/hidden", "").status, 404);
    let chains = get(port, "/api/v1/chains", "");
    assert_eq!(chains.status, 200);
    assert!(chains.text().contains("\"mix\""));
    // `/` is the HTML index: the listed remailer with its own page, never the hidden one.
    let home = get(port, "/", "");
    assert_eq!(home.status, 200);
    assert!(home.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    let policy = home.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("default-src 'none'") && !policy.contains("script"), "{policy}");
    let page = home.text();
    assert!(page.contains("href=\"mlist.txt\"") && page.contains("href=\"pubring.mix\""));
    let link = page.split("href=\"").find_map(|l| l.strip_prefix("remailer-fast-")).unwrap();
    let fast = format!("/remailer-fast-{}", link.split('"').next().unwrap());
    let fast_page = get(port, &fast, "");
    assert_eq!(fast_page.status, 200, "{fast}");
    assert!(fast_page.text().contains("<svg"), "the page has its charts");
    assert!(!page.contains("remailer-hidden-"), "hidden remailers get no public page");
    for (file, content_type) in [
        ("from.html", "text/html; charset=utf-8"),
        ("mlist.html", "text/html; charset=utf-8"),
        ("rlist2.html", "text/html; charset=utf-8"),
        ("clist.html", "text/html; charset=utf-8"),
        ("thesaurus/", "text/html; charset=utf-8"),
        ("thesaurus/index.html", "text/html; charset=utf-8"),
        ("thesaurus/index.txt", "text/plain; charset=utf-8"),
        ("pubring.mix", "text/plain; charset=utf-8"),
        ("type2.list", "text/plain; charset=utf-8"),
        ("pgp-all.asc", "application/pgp-keys"),
        ("pgp-rsa.asc", "application/pgp-keys"),
        ("mlist2.txt", "text/plain; charset=utf-8"),
        ("rlist2.txt", "text/plain; charset=utf-8"),
        ("rlist-dsa.txt", "text/plain; charset=utf-8"),
        ("rlist2-clear.txt", "text/plain; charset=utf-8"),
        ("clist.txt", "text/plain; charset=utf-8"),
    ] {
        let r = get(port, &format!("/{file}"), "");
        assert_eq!(r.status, 200, "{file}");
        assert_eq!(r.header("content-type"), Some(content_type), "{file}");
    }
    // The thesaurus at Echolot's URLs: index.txt maps ids to the listed remailers only, and
    // a raw reply is served as text that no browser may sniff into HTML.
    let moved = get(port, "/thesaurus", "");
    assert_eq!((moved.status, moved.header("location")), (308, Some("/thesaurus/")));
    let index_txt = get(port, "/thesaurus/index.txt", "").text();
    let first = index_txt.lines().next().unwrap_or_default();
    let (nick, rest) = first.split_once('\t').expect("nick\tid\taddress");
    let (id, address) = rest.split_once('\t').unwrap();
    assert_eq!((nick, address), ("fast", "fast@one.example"), "{index_txt}");
    // The listed YAMN remailer too; never the hidden one.
    assert_eq!(index_txt.lines().count(), 2, "{index_txt}");
    assert!(index_txt.contains("\tyamn@three.example") && !index_txt.contains("hidden"));
    let reply = get(port, &format!("/thesaurus/{id}.conf"), "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.text(), format!("{HOSTILE_REPLY}fast@one.example"));
    let thesaurus = get(port, "/thesaurus/", "").text();
    assert!(thesaurus.contains(&format!("href=\"{id}.conf\"")), "{thesaurus}");
    assert!(!thesaurus.contains("hidden") && !thesaurus.contains("<script"), "{thesaurus}");
    for path in ["/thesaurus/..%2Fsecret", "/thesaurus/999.conf", "/thesaurus/.index.txt.tmp"] {
        assert_eq!(get(port, path, "").status, 404, "{path}");
    }
    // Only the public tree is served; nothing outside it, and no temporary files.
    for path in ["/fathometer.sqlite", "/secret", "/..%2Fsecret", "/results.private/mlist.txt"] {
        assert_eq!(get(port, path, "").status, 404, "{path}");
    }

    let metrics = get(port, "/metrics", "");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text"))
    );
    let text = metrics.text();
    assert!(
        text.contains("fathometer_remailer_reliability{list=\"mix\",nick=\"fast\"} 1.0"),
        "{text}"
    );
    assert!(!text.contains("nick=\"hidden\""), "{text}");
    assert!(text.contains("fathometer_healthy 1.0"), "{text}");
    assert!(text.contains("fathometer_pings{outcome=\"returned\"} 117"), "{text}");
    assert!(
        text.contains("fathometer_remailer_reliability{list=\"yamn\",nick=\"yamn\"} 1.0"),
        "{text}"
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn a_client_reading_while_a_file_is_rewritten_never_gets_part_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), "");
    let _daemon = Daemon(
        bin().arg("run").arg("--config").arg(&config).stderr(Stdio::null()).spawn().unwrap(),
    );
    let results = dir.path().join("state/results");
    let start = Instant::now();
    while !(TcpStream::connect(("127.0.0.1", port)).is_ok() && results.join("mlist.txt").exists()) {
        assert!(start.elapsed() < Duration::from_secs(15), "daemon not up in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two versions of a large file, rewritten as the publisher does (temp file, fsync,
    // rename) as fast as possible while the client reads.
    let versions: [Vec<u8>; 2] =
        [b"first version\n".repeat(40_000), b"the second one\n".repeat(30_000)];
    let path = results.join("concurrent.txt");
    fathometer::publish::write_atomic(&path, &versions[0]).unwrap();
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop_writing = std::sync::Arc::new(AtomicBool::new(false));
    let rewritten = std::sync::Arc::new(AtomicUsize::new(0));
    let writer = {
        let (path, versions) = (path.clone(), versions.clone());
        let (stop, rewritten) = (stop_writing.clone(), rewritten.clone());
        std::thread::spawn(move || {
            let mut rewrites = 0usize;
            while !stop.load(Ordering::SeqCst) {
                fathometer::publish::write_atomic(&path, &versions[rewrites % 2]).unwrap();
                rewrites += 1;
                rewritten.store(rewrites, Ordering::SeqCst);
            }
            rewrites
        })
    };
    // Read until the reads have overlapped many rewrites and seen both versions (a slow
    // fsync makes rewrites rare, so a fixed number of reads could see only one).
    let mut seen = [0usize; 2];
    let start = Instant::now();
    let mut reads = 0;
    while reads < 150 || rewritten.load(Ordering::SeqCst) <= 10 || seen.contains(&0) {
        assert!(start.elapsed() < Duration::from_secs(60), "{reads} reads, seen {seen:?}");
        reads += 1;
        let r = get(port, "/concurrent.txt", "");
        assert_eq!(r.status, 200);
        let which = versions.iter().position(|v| *v == r.body);
        let which =
            which.unwrap_or_else(|| panic!("a partial or mixed file: {} bytes", r.body.len()));
        seen[which] += 1;
    }
    stop_writing.store(true, Ordering::SeqCst);
    let rewrites = writer.join().unwrap();
    assert!(rewrites > 10, "the file was rewritten during the reads ({rewrites} times)");
    assert!(seen[0] > 0 && seen[1] > 0, "both versions were served: {seen:?}");
}

#[test]
fn healthz_is_503_with_the_reason_when_returns_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    // A Maildir that cannot be created (its parent is a file), and an IMAP server that is
    // not there (a port nobody listens on): both daemons run, but neither reads returns.
    std::fs::write(dir.path().join("blocker"), "a file, not a directory").unwrap();
    let closed = free_port();
    let cases = [
        ("maildir", "[mailbox]\nmaildir = \"blocker/Maildir\"\n".to_owned(), "Maildir"),
        (
            "imap",
            format!(
                "[mailbox]\npoll_secs = 1\n[mailbox.imap]\nhost = \"127.0.0.1\"\nport = {closed}\n\
                 user = \"nobody\"\npassword_file = \"imap-pass\"\n"
            ),
            "IMAP 127.0.0.1",
        ),
    ];
    for (name, mailbox, expected) in cases {
        let case_dir = dir.path().join(name);
        std::fs::create_dir_all(&case_dir).unwrap();
        std::fs::copy(dir.path().join("blocker"), case_dir.join("blocker")).unwrap();
        std::fs::write(case_dir.join("imap-pass"), "x\n").unwrap();
        let port = free_port();
        let extra = format!("{mailbox}[schedule]\ntick_secs = 1\n");
        let config = write_config(&case_dir, &format!("127.0.0.1:{port}"), &extra);
        let _daemon = Daemon(
            bin().arg("run").arg("--config").arg(&config).stderr(Stdio::null()).spawn().unwrap(),
        );
        let start = Instant::now();
        let health = loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let h = get(port, "/healthz", "");
                if h.text().contains(expected) {
                    break h;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(15), "{name}: no ingester reason");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(health.status, 503, "{name}: {}", health.text());
        let body: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
        assert_eq!(body["status"], "unhealthy");
        assert!(body["reason"].as_str().unwrap().starts_with("ingester: "), "{body}");
        let metrics = get(port, "/metrics", "").text();
        assert!(metrics.contains("fathometer_ingester_up 0.0"), "{name}: {metrics}");
    }
}

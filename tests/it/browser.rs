//! The HTML pages in a real browser: headless Chromium loads them from `file://` and dumps
//! the DOM it built, so we see what a browser makes of hostile remailer strings.
//!
//! Skips (with a message) when `/usr/bin/chromium` is missing, unless
//! `FATHOMETER_REQUIRE_BROWSER=1`, which turns a missing browser into a failure.
//! `FATHOMETER_UPDATE_SCREENSHOT=1` also copies the index screenshot to
//! `docs/screenshots/index.png`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fathometer::publish::html::{
    BrokenChain, Counters, Day, EventView, FromLineRow, KeyView, NoticeView, REPLY_KINDS,
    RemailerView, ReplyView, Site, StabilityView, ThesaurusFile, ThesaurusRow, TypeStats,
    render_from_lines, render_index, render_list_page, render_remailer, render_thesaurus,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const TIMEOUT: Duration = Duration::from_secs(90);
const PWNED: &str = "document.title='pwned'";
const HOSTILE_NICK: &str = "<script>document.title='pwned'</script>";

fn browser() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    if std::env::var("FATHOMETER_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{CHROMIUM} is missing and FATHOMETER_REQUIRE_BROWSER=1 (apt-get install chromium)");
    }
    eprintln!(
        "SKIPPED browser test: {CHROMIUM} not found (apt-get install chromium; set \
         FATHOMETER_REQUIRE_BROWSER=1 to make this a failure)"
    );
    None
}

/// Runs headless Chromium with `extra` arguments on `url`, with a fresh profile, and returns
/// its standard output.
fn chromium(bin: &str, dir: &Path, extra: &[String], url: &str) -> String {
    let profile = tempfile::tempdir_in(dir).expect("profile dir");
    let out_path = dir.join("chromium.out");
    let err_path = dir.join("chromium.err");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {TIMEOUT:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}) on {url}:\n{stderr}");
    std::fs::read_to_string(&out_path).expect("chromium output")
}

fn dump_dom(bin: &str, dir: &Path, file: &Path) -> String {
    let dom = chromium(bin, dir, &["--dump-dom".to_owned()], &file_url(file));
    assert!(dom.contains("</html>"), "no DOM dumped for {}:\n{dom}", file.display());
    dom
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The text of the dumped `<title>` element.
fn title(dom: &str) -> &str {
    let start = dom.find("<title>").expect("<title>") + "<title>".len();
    let end = start + dom[start..].find("</title>").expect("</title>");
    &dom[start..end]
}

fn site() -> Site {
    Site {
        name: "fathometer test pinger".to_owned(),
        operator: Some("admin.example.org".to_owned()),
        generated: "Tue, 14 Nov 2023 22:13:20 +0000".to_owned(),
        model: "methodology".to_owned(),
        base_path: String::new(),
        extra_lists: vec!["rlist-rsa.txt".to_owned(), "clist.txt".to_owned()],
    }
}

/// Twelve days ending 2023-11-14, oldest first; `seed` varies the figures.
fn days(seed: u32) -> Vec<Day> {
    (0..12u32)
        .map(|i| {
            let wobble = f64::from((i * 7 + seed * 13) % 10);
            let missing = (i + seed) % 11 == 5;
            Day {
                date: format!("2023-11-{:02}", 3 + i),
                reliability: (!missing).then(|| (1.0 - wobble * wobble / 200.0).clamp(0.0, 1.0)),
                latency_secs: (!missing).then(|| 240.0 + 360.0 * wobble + 600.0 * f64::from(seed)),
            }
        })
        .collect()
}

fn stats(label: &str, seed: u32, reliability: &str, latency: &str, history: &str) -> TypeStats {
    TypeStats {
        label: label.to_owned(),
        reliability: reliability.to_owned(),
        latency: latency.to_owned(),
        history: history.to_owned(),
        days: days(seed),
    }
}

fn remailer(nick: &str, address: &str, seed: u32, cpunk: bool) -> RemailerView {
    RemailerView {
        nick: nick.to_owned(),
        address: address.to_owned(),
        status: "active".to_owned(),
        caps_line: format!(
            "$remailer{{\"{nick}\"}} = \"<{address}> cpunk max mix pgp pgponly repgp remix latent \
             hash cut test ekx inflt50 rhop5 reord klen1024\";"
        ),
        options: "D".to_owned(),
        software: Some("Mixmaster 3.0.2d".to_owned()),
        mix: Some(stats("Mixmaster", seed, "99.87%", " 0:12:41", "++++++**+***")),
        cpunk: cpunk.then(|| stats("Cypherpunk", seed + 1, "98.02%", " 0:45:10", "**+***+****+")),
        yamn: None,
        keys: vec![KeyView {
            ping_type: "mix".to_owned(),
            key_id: "4b3c7e0a9d1f2e8c6b5a49387f6e5d4c".to_owned(),
            valid_from: "2023-06-01".to_owned(),
            valid_until: "2024-06-01".to_owned(),
            state: "current".to_owned(),
        }],
        counters: Counters { returned: 88, duplicate: 1, forged: 0, corrupted: 2, bounced: 0 },
        replies: vec![ReplyView {
            kind: "conf".to_owned(),
            received: "2023-11-14 06:12".to_owned(),
            body: format!("Remailer-Type: Mixmaster 3.0.2d\nCapabilities: <{address}>\n"),
        }],
        stability: vec![StabilityView {
            label: "Mixmaster".to_owned(),
            wfu: format!("{:.1}%", 99.0 - f64::from(seed)),
            mtbf: format!("{} d 3 h", 4 + seed),
            time_known: "10 d 2 h".to_owned(),
            longevity: format!("{} of the last 365 days", 300 - seed * 20),
            flags: if seed.is_multiple_of(2) { "Stable, Longterm" } else { "Stable" }.to_owned(),
            days: uptime_days(seed),
        }],
        downtime: None,
        replay: None,
        events: vec![EventView {
            when: "2023-11-14 06:00 UTC".to_owned(),
            title: format!("{nick}: service resumed (mix)"),
            detail: "pings come back again after 5 h 10 min without".to_owned(),
            kind: "resumed".to_owned(),
            page: None,
        }],
    }
}

/// Ninety days ending 2023-11-14, oldest first: the uptime of each, some unknown.
fn uptime_days(seed: u32) -> Vec<Day> {
    (0..90u32)
        .map(|i| Day {
            date: format!("day-{i}"),
            reliability: (!(i + seed).is_multiple_of(13))
                .then(|| 1.0 - f64::from((i * 5 + seed) % 4) / 8.0),
            latency_secs: None,
        })
        .collect()
}

fn hostile() -> RemailerView {
    let mut r = remailer(HOSTILE_NICK, "evil@example.org", 4, true);
    r.caps_line = format!("\"><img src=x onerror={PWNED}>");
    r.options = format!("<img src=x onerror={PWNED}>");
    r.software = Some(format!("<svg onload={PWNED}>"));
    r.keys[0].key_id = format!("\"><iframe srcdoc=\"<script>{PWNED}</script>\">");
    r.replies = vec![ReplyView {
        kind: "conf".to_owned(),
        received: "<b>bold</b>".to_owned(),
        body: format!("</pre><script>{PWNED}</script><img src=x onerror={PWNED}>"),
    }];
    r.downtime = Some(NoticeView {
        state: "active".to_owned(),
        text: format!(
            "unavailable because of <img src=x onerror={PWNED}> maintenance, expected back Tue \
             14 Nov 16:30 UTC"
        ),
        source: "announced by the remailer's operator, signed with its admin key".to_owned(),
    });
    r.events[0].detail = format!("<iframe srcdoc=\"<script>{PWNED}</script>\">");
    r
}

fn remailers() -> Vec<RemailerView> {
    vec![
        remailer("austria", "mixmaster@remailer.example.at", 0, true),
        remailer("dizum", "remailer@example.nl", 1, true),
        remailer("frell", "remailer@frell.example.net", 2, false),
        remailer("paranoia", "mixmaster@paranoici.example.org", 3, true),
        hostile(),
    ]
}

/// No element or attribute came from remailer data. In the serialised DOM a `<` of text is
/// always `&lt;` and an attribute is always `name="value"`, while the hostile strings here
/// never quote their handlers: so `<img` can only be an element and `onerror="` only an
/// attribute.
fn assert_no_injected_elements(dom: &str, what: &str) {
    let lower = dom.to_ascii_lowercase();
    for bad in ["<script", "<img", "<iframe", "<b>", "onerror=\"", "onload=\""] {
        assert!(!lower.contains(bad), "{what}: the DOM has {bad:?}:\n{dom}");
    }
}

#[test]
fn pages_in_headless_chromium() {
    let Some(bin) = browser() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let site = site();
    let list = remailers();
    let hostile = hostile();
    let broken1 = [BrokenChain { left: "frell".into(), right: "*".into() }];
    let broken2 = [BrokenChain { left: "dizum".into(), right: "paranoia".into() }];

    let index_path = dir.path().join("index.html");
    let events: Vec<EventView> = list.iter().flat_map(|r| r.events.clone()).collect();
    std::fs::write(
        &index_path,
        render_index(&site, &list, &broken1, &broken2, &[], &events).expect("index"),
    )
    .expect("write index");
    for r in &list {
        let html = render_remailer(&site, r).expect("remailer page");
        std::fs::write(dir.path().join(r.page()), html).expect("write page");
    }
    let page_path = dir.path().join(hostile.page());
    let rows = [FromLineRow {
        nick: HOSTILE_NICK.to_owned(),
        types: "mix".to_owned(),
        from: format!("\"x\" <a@b><img src=x onerror={PWNED}>"),
    }];
    let from_path = dir.path().join("from.html");
    std::fs::write(&from_path, render_from_lines(&site, &rows, &[]).expect("from"))
        .expect("write from");
    // The thesaurus lives in its own directory (Echolot's URLs) and links back up.
    let thesaurus_rows: Vec<ThesaurusRow> = list
        .iter()
        .enumerate()
        .map(|(i, r)| ThesaurusRow {
            nick: r.nick.clone(),
            address: r.address.clone(),
            page: r.page(),
            files: REPLY_KINDS
                .iter()
                .map(|kind| {
                    let reply = r.replies.iter().find(|reply| reply.kind == *kind)?;
                    Some(ThesaurusFile {
                        name: format!("{i}.{kind}"),
                        received: reply.received.clone(),
                    })
                })
                .collect(),
        })
        .collect();
    std::fs::create_dir(dir.path().join("thesaurus")).expect("thesaurus dir");
    let thesaurus_path = dir.path().join("thesaurus/index.html");
    let up = Site { base_path: "../".to_owned(), ..site.clone() };
    std::fs::write(&thesaurus_path, render_thesaurus(&up, &thesaurus_rows, 21).expect("thesaurus"))
        .expect("write thesaurus");
    // rlist.txt carries every remailer's own caps line: its page shows them as text.
    let rlist = format!("$remailer{{\"{HOSTILE_NICK}\"}} = \"<evil@example.org> {PWNED}\";\n");
    let lists = ["mlist.txt", "rlist.txt"].map(String::from);
    let rlist_path = dir.path().join("rlist.html");
    std::fs::write(
        &rlist_path,
        render_list_page(&site, "rlist.txt", &rlist, &lists).expect("list"),
    )
    .expect("write list page");

    let escaped_nick = "&lt;script&gt;document.title='pwned'&lt;/script&gt;";

    // The index: one sparkline per family row, the hostile nick as text, nothing injected.
    let dom = dump_dom(bin, dir.path(), &index_path);
    assert_eq!(title(&dom), "Remailer statistics – fathometer test pinger");
    assert_eq!(dom.matches("<svg").count(), 5 + 4, "a sparkline per row:\n{dom}");
    assert!(dom.contains(&format!(">{escaped_nick}</a>")), "{dom}");
    assert!(dom.contains(&format!("href=\"{}\"", hostile.page())));
    // The downtime notice, the RFC 636 way, with the hostile reason as text.
    assert!(
        dom.contains(
            "unavailable because of &lt;img src=x onerror=document.title='pwned'&gt; \
             maintenance, expected back Tue 14 Nov 16:30 UTC"
        ),
        "{dom}"
    );
    assert!(dom.contains("Recent events"), "{dom}");
    assert!(dom.contains("&lt;iframe srcdoc="), "{dom}");
    assert_no_injected_elements(&dom, "index");

    // The hostile remailer's page: the charts are SVG elements, the rest is text.
    let dom = dump_dom(bin, dir.path(), &page_path);
    assert_eq!(title(&dom), format!("Remailer {escaped_nick} – fathometer test pinger"));
    assert_eq!(
        dom.matches("<svg").count(),
        4 + 1,
        "two charts per family, one uptime chart:\n{dom}"
    );
    assert!(dom.contains("Long-term stability"), "{dom}");
    assert!(dom.contains("Weighted fractional uptime"), "{dom}");
    assert!(dom.contains(">95.0%<"), "the WFU of this remailer:\n{dom}");
    assert!(dom.contains("expected back Tue 14 Nov 16:30 UTC"), "{dom}");
    let with_data: usize = [&hostile.mix, &hostile.cpunk]
        .into_iter()
        .flatten()
        .flat_map(|ts| &ts.days)
        .map(|d| usize::from(d.reliability.is_some()) + usize::from(d.latency_secs.is_some()))
        .sum();
    let uptime_bars = hostile.stability[0].days.iter().filter(|d| d.reliability.is_some()).count();
    assert_eq!(
        dom.matches("<rect class=\"bar\"").count(),
        with_data + uptime_bars,
        "a bar per day with data"
    );
    assert!(dom.contains("role=\"img\""));
    assert!(dom.contains(&format!("<h1>Remailer {escaped_nick}</h1>")), "{dom}");
    assert!(dom.contains("&lt;/pre&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;"));
    assert!(dom.contains("\"&gt;&lt;img src=x onerror=document.title='pwned'&gt;"), "{dom}");
    assert!(dom.contains("&lt;b&gt;bold&lt;/b&gt;"));
    assert_no_injected_elements(&dom, "remailer page");

    for (path, expected) in
        [(&from_path, "From: lines"), (&thesaurus_path, "Thesaurus"), (&rlist_path, "rlist.txt")]
    {
        let dom = dump_dom(bin, dir.path(), path);
        assert_eq!(title(&dom), format!("{expected} – fathometer test pinger"));
        assert!(dom.contains(escaped_nick), "{dom}");
        assert_no_injected_elements(&dom, expected);
    }
    let dom = dump_dom(bin, dir.path(), &thesaurus_path);
    assert!(dom.contains(&format!("href=\"../{}\"", hostile.page())), "{dom}");
    assert!(dom.contains("href=\"4.conf\""), "{dom}");

    // A screenshot of the index, for the documentation.
    let png = dir.path().join("index.png");
    chromium(
        bin,
        dir.path(),
        &[format!("--screenshot={}", png.display()), "--window-size=1200,1600".to_owned()],
        &file_url(&index_path),
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("FATHOMETER_UPDATE_SCREENSHOT").is_some() {
        let target: PathBuf =
            [env!("CARGO_MANIFEST_DIR"), "docs", "screenshots", "index.png"].iter().collect();
        std::fs::create_dir_all(target.parent().expect("parent")).expect("screenshot dir");
        std::fs::write(&target, &bytes).expect("copy screenshot");
        let page_png = target.with_file_name("remailer.png");
        chromium(
            bin,
            dir.path(),
            &[format!("--screenshot={}", page_png.display()), "--window-size=1200,1600".to_owned()],
            &file_url(&dir.path().join(list[0].page())),
        );
    }
}

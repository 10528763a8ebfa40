use super::*;

const GOLDEN_INDEX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/index.html");

fn site() -> Site {
    Site {
        name: "Test pinger".to_owned(),
        operator: Some("pinger-admin.example.org".to_owned()),
        generated: "Tue, 14 Nov 2023 22:13:20 +0000".to_owned(),
        model: "methodology".to_owned(),
        base_path: String::new(),
        extra_lists: Vec::new(),
    }
}

/// Twelve days ending 2023-11-14, oldest first.
fn days(rel: [Option<f64>; 12], lat: [Option<f64>; 12]) -> Vec<Day> {
    (0..12)
        .map(|i| Day {
            date: format!("2023-11-{:02}", 3 + i),
            reliability: rel[i],
            latency_secs: lat[i],
        })
        .collect()
}

fn stats(label: &str, rel: &str, lat: &str, history: &str, days: Vec<Day>) -> TypeStats {
    TypeStats {
        label: label.to_owned(),
        reliability: rel.to_owned(),
        latency: lat.to_owned(),
        history: history.to_owned(),
        days,
    }
}

fn remailer(nick: &str, address: &str) -> RemailerView {
    let full = [Some(1.0); 12];
    let mut rel = full;
    rel[3] = None;
    rel[7] = Some(0.5);
    rel[9] = Some(0.0);
    let mut lat = [Some(1200.0); 12];
    lat[3] = None;
    lat[9] = None;
    lat[11] = Some(4000.0);
    RemailerView {
        nick: nick.to_owned(),
        address: address.to_owned(),
        status: "active".to_owned(),
        caps_line: format!("$remailer{{\"{nick}\"}} = \"<{address}> cpunk mix pgp latent\";"),
        options: "D".to_owned(),
        software: Some("Mixmaster 3.0.2d".to_owned()),
        mix: Some(stats("Mixmaster", "91.67%", "0:20:00", "++++ +++++++", days(rel, lat))),
        cpunk: Some(stats("Cypherpunk", "100.00%", "0:20:00", "************", days(full, lat))),
        yamn: None,
        keys: vec![KeyView {
            ping_type: "mix".to_owned(),
            key_id: "0123456789abcdef0123456789abcdef".to_owned(),
            valid_from: "2023-01-01".to_owned(),
            valid_until: "2024-01-01".to_owned(),
            state: "current".to_owned(),
        }],
        counters: Counters { returned: 20, duplicate: 1, forged: 0, corrupted: 2, bounced: 3 },
        replies: vec![
            ReplyView {
                kind: "conf".to_owned(),
                received: "2023-11-14 10:00".to_owned(),
                body: "Remailer-Type: Mixmaster 3.0.2d\n".to_owned(),
            },
            ReplyView {
                kind: "key".to_owned(),
                received: "2023-11-13 09:30".to_owned(),
                body: "-----Begin Mix Key-----\n".to_owned(),
            },
        ],
        stability: vec![StabilityView {
            label: "Mixmaster".to_owned(),
            wfu: "97.3%".to_owned(),
            mtbf: "4 d 2 h".to_owned(),
            time_known: "9 d 20 h".to_owned(),
            longevity: "41 of the last 365 days".to_owned(),
            flags: "Stable".to_owned(),
            days: (0..90)
                .map(|i| Day {
                    date: format!("day {i}"),
                    reliability: (i % 7 != 0).then_some(1.0 - f64::from(i % 3) * 0.25),
                    latency_secs: None,
                })
                .collect(),
        }],
        downtime: Some(NoticeView {
            state: "active".to_owned(),
            text: "unavailable because of hardware maintenance, expected back Tue 14 Nov 16:30 UTC"
                .to_owned(),
            source: "announced by the remailer's operator, signed with its admin key".to_owned(),
        }),
        replay: Some(ReplayView {
            broken: true,
            text: "it delivered both copies of a packet sent twice (2023-11-14 10:00 UTC; 1 \
                   conclusive probe of 1, 1 replayed)"
                .to_owned(),
        }),
        events: vec![EventView {
            when: "2023-11-14 10:00 UTC".to_owned(),
            title: format!("{nick}: not responding (mix)"),
            detail: "the last 3 pings, sent since Tue 14 Nov 04:00 UTC, did not come back"
                .to_owned(),
            kind: "silent".to_owned(),
            page: None,
        }],
    }
}

const HOSTILE_NICK: &str = "<script>alert(1)</script>";
const HOSTILE_CAPS: &str = "\"><img src=x onerror=alert(2)>";
const HOSTILE_BODY: &str = "</pre><script>alert(3)</script>";

fn hostile() -> RemailerView {
    let mut r = remailer(HOSTILE_NICK, "\"><img src=x onerror=alert(4)>@example.org");
    r.caps_line = HOSTILE_CAPS.to_owned();
    r.options = "<img src=x onerror=alert(5)>".to_owned();
    r.software = Some("<script>alert(6)</script>".to_owned());
    r.status = "<img src=x onerror=alert(7)>".to_owned();
    r.keys[0].key_id = "\"><script>alert(8)</script>".to_owned();
    r.keys[0].state = "<img src=x onerror=alert(9)>".to_owned();
    if let Some(mix) = r.mix.as_mut() {
        mix.history = "<script>x</script>".to_owned();
        mix.days[0].date = "<img src=x onerror=alert(10)>".to_owned();
    }
    r.replies = vec![
        ReplyView {
            kind: "conf\"><script>alert(11)</script>".to_owned(),
            received: "<img src=x onerror=alert(12)>".to_owned(),
            body: HOSTILE_BODY.to_owned(),
        },
        ReplyView { kind: "key".to_owned(), received: "x".to_owned(), body: HOSTILE_BODY.into() },
    ];
    if let Some(n) = r.downtime.as_mut() {
        n.text = format!("unavailable because of {HOSTILE_BODY}, expected back soon");
        n.state = "<img src=x onerror=alert(13)>".to_owned();
    }
    r.events[0].detail = HOSTILE_CAPS.to_owned();
    r.events[0].page = Some("\"><script>alert(14)</script>".to_owned());
    r.stability[0].flags = HOSTILE_NICK.to_owned();
    r.stability[0].days[0].date = "<img src=x onerror=alert(15)>".to_owned();
    r
}

fn assert_inert(html: &str) {
    for bad in ["<script", "<img", "onerror=", "</pre><", "javascript:"] {
        assert!(!html.to_ascii_lowercase().contains(bad), "found {bad:?} in:\n{html}");
    }
}

#[test]
fn hostile_remailer_page_is_escaped() {
    let html = render_remailer(&site(), &hostile()).expect("render");
    assert_inert(&html);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#47;script&gt;"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;img src&#61;x onerror&#61;alert(2)&gt;"), "{html}");
    assert!(html.contains("<pre>&lt;&#47;pre&gt;&lt;script&gt;alert(3)&lt;&#47;script&gt;</pre>"));
    // The chart's own labels are escaped too.
    assert!(html.contains("&lt;img src&#61;x onerror&#61;alert(10)&gt;: 100.0%"));
    // The page title is the escaped nick.
    assert!(
        html.contains("<title>Remailer &lt;script&gt;alert(1)&lt;&#47;script&gt; – Test pinger")
    );
}

#[test]
fn hostile_strings_are_escaped_on_every_page() {
    let r = hostile();
    let list = [r.clone(), remailer("good", "good@example.org")];
    let broken = [BrokenChain { left: HOSTILE_NICK.into(), right: HOSTILE_CAPS.into() }];
    let rows = [FromLineRow {
        nick: HOSTILE_NICK.into(),
        types: "<img src=x onerror=alert(1)>".into(),
        from: "\"Evil\" <script>x</script> <a@b>".into(),
    }];
    let mut evil_site = site();
    evil_site.name = "<script>site</script>".into();
    evil_site.operator = Some("<img src=x onerror=op>".into());
    let pages = [
        render_index(&evil_site, &list, &broken, &broken, &broken, &r.events).expect("index"),
        render_remailer(&evil_site, &r).expect("remailer"),
        render_from_lines(&evil_site, &rows, &rows).expect("from"),
        render_thesaurus(&evil_site, &thesaurus_rows(&list), 21).expect("thesaurus"),
        // rlist.txt carries each remailer's own caps line.
        render_list_page(&evil_site, "rlist.txt", HOSTILE_CAPS, &lists()).expect("list"),
    ];
    for html in &pages {
        assert_inert(html);
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
    // The index links the hostile remailer by its sanitised page name only.
    assert!(pages[0].contains(&format!("href=\"{}\"", r.page())));
    assert!(r.page().starts_with("remailer-script-alert-1-script-"));
}

#[test]
fn templates_never_mark_data_safe() {
    for (name, source) in TEMPLATES {
        let squeezed: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        for bad in ["|safe", "autoescapefalse", "<script"] {
            assert!(!squeezed.contains(bad), "{name} contains {bad}");
        }
    }
}

#[test]
fn escape_covers_attribute_breakers() {
    assert_eq!(
        escape("<a b='c' d=\"e\">&`/"),
        "&lt;a b&#61;&#39;c&#39; d&#61;&quot;e&quot;&gt;&amp;&#96;&#47;"
    );
    assert_eq!(escape("plain text ä"), "plain text ä");
}

#[test]
fn page_names_are_safe_and_distinct() {
    let nicks = ["../../etc/passwd", "<x>", "", "ünïcødé", "日本", "a/b\\c", "..", "CON", "-x-"];
    let mut seen = std::collections::BTreeSet::new();
    for (i, nick) in nicks.iter().enumerate() {
        for addr in ["a@example.org", "b@example.org"] {
            let address = format!("{i}{addr}");
            let name = page_name(nick, &address);
            let stem = name.strip_suffix(".html").expect("ends in .html");
            assert!(stem.starts_with("remailer-"), "{name}");
            assert!(
                stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert!(!name.contains("..") && !name.contains('/') && !name.contains("--"), "{name}");
            assert!(name.len() <= "remailer-".len() + 32 + 1 + 8 + ".html".len());
            assert!(seen.insert(name.clone()), "duplicate {name}");
        }
    }
    assert_eq!(page_name("Austria", "mix@example.org"), page_name("Austria", "mix@example.org"));
    assert!(page_name("Austria", "mix@example.org").starts_with("remailer-austria-"));
    assert_eq!(page_name("", "x@y").len(), "remailer-".len() + 8 + ".html".len());
    assert!(page_name("../../etc/passwd", "x").starts_with("remailer-etc-passwd-"));
    assert!(page_name(&"a".repeat(1000), "x").len() < 60);
    // Stable across builds: FNV-1a of the address.
    assert_eq!(
        page_name("x", ""),
        format!("remailer-x-{:08x}.html", 0xcbf2_9ce4_u32 ^ 0x8422_2325)
    );
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

fn assert_numeric(svg: &str) {
    let lower = svg.to_ascii_lowercase();
    assert!(!lower.contains("nan") && !lower.contains("inf"), "{svg}");
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
    assert!(
        svg.contains("role=\"img\"") && svg.contains("aria-label=\"") && svg.contains("<title>")
    );
}

#[test]
fn charts_draw_one_bar_per_day_with_data() {
    let mut rel = [Some(0.9); 12];
    rel[0] = None;
    rel[5] = None;
    let mut lat = [Some(600.0); 12];
    lat[11] = None;
    let d = days(rel, lat);
    let r = reliability_chart(&d);
    assert_eq!(count(&r, "<rect class=\"bar\""), 10);
    assert_eq!(count(&r, "<rect class=\"nodata\""), 2);
    assert_eq!(count(&r, "<title>"), 13);
    assert_numeric(&r);
    let l = latency_chart(&d);
    assert_eq!(count(&l, "<rect class=\"bar\""), 11);
    assert_numeric(&l);
    assert_eq!(count(&reliability_sparkline(&d), "<rect class=\"bar\""), 10);
    assert!(l.contains("<title>2023-11-03: 0:10:00</title>"), "{l}");
    assert!(r.contains("<title>2023-11-04: 90.0%</title>"), "{r}");
}

#[test]
fn chart_values_are_clamped_and_never_nan() {
    let weird = [
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
        Some(-3.0),
        Some(7.5),
        Some(f64::MAX),
        Some(f64::MIN_POSITIVE),
        Some(-0.0),
        Some(1.0),
        Some(0.0),
        None,
        Some(1e-300),
    ];
    let d = days(weird, weird);
    for svg in [reliability_chart(&d), latency_chart(&d), reliability_sparkline(&d)] {
        assert_numeric(&svg);
        // NaN and None are gaps; everything else is a bar.
        assert_eq!(count(&svg, "<rect class=\"bar\""), 10, "{svg}");
    }
    let r = reliability_chart(&d);
    assert!(r.contains("<title>2023-11-04: 100.0%</title>"), "+inf is 100 %");
    assert!(r.contains("<title>2023-11-06: 0.0%</title>"), "-3 is 0 %");
    assert!(r.contains("<title>2023-11-07: 100.0%</title>"), "7.5 is 100 %");
    assert!(!r.contains("=\"-"), "no negative coordinates");
    let l = latency_chart(&d);
    assert!(l.contains("<title>2023-11-08: 100:00:00</title>"), "capped at 100 h: {l}");
    // Every bar lies inside the plot.
    for part in r.split("<rect class=\"bar\" ").skip(1) {
        let attr = |name: &str| -> f64 {
            let start = part.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
            let end = start + part[start..].find('"').expect("quote");
            part[start..end].parse().expect("number")
        };
        assert!(attr("y") >= 0.0 && attr("y") + attr("height") <= chart::CHART_HEIGHT);
        assert!(attr("height") > 0.0 && attr("width") > 0.0);
    }
}

#[test]
fn charts_of_no_days_and_many_days() {
    for svg in [reliability_chart(&[]), latency_chart(&[]), reliability_sparkline(&[])] {
        assert_numeric(&svg);
        assert_eq!(count(&svg, "class=\"bar\""), 0);
    }
    let many: Vec<Day> = (0..400)
        .map(|i| Day { date: format!("d{i}"), reliability: Some(0.5), latency_secs: Some(60.0) })
        .collect();
    let svg = latency_chart(&many);
    assert_numeric(&svg);
    assert_eq!(count(&svg, "class=\"bar\""), 400);
    assert!(count(&svg, "text-anchor=\"middle\"") <= 12);
}

#[test]
fn long_reply_bodies_are_cut_at_a_character_boundary() {
    let mut r = remailer("big", "big@example.org");
    r.replies[0].body = "ä".repeat(MAX_REPLY_BYTES);
    let html = render_remailer(&site(), &r).expect("render");
    assert!(html.contains(&format!("the reply is {} bytes long", 2 * MAX_REPLY_BYTES)));
    assert!(html.len() < 2 * MAX_REPLY_BYTES);
}

/// Thesaurus rows as the publisher makes them, numbering the remailers 1, 2, … in order.
fn thesaurus_rows(views: &[RemailerView]) -> Vec<ThesaurusRow> {
    views
        .iter()
        .enumerate()
        .map(|(i, v)| ThesaurusRow {
            nick: v.nick.clone(),
            address: v.address.clone(),
            page: v.page(),
            files: REPLY_KINDS
                .iter()
                .map(|kind| {
                    let reply = v.replies.iter().find(|r| r.kind == *kind)?;
                    Some(ThesaurusFile {
                        name: format!("{}.{kind}", i + 1),
                        received: reply.received.clone(),
                    })
                })
                .collect(),
        })
        .collect()
}

fn lists() -> Vec<String> {
    ["mlist.txt", "mlist2.txt", "rlist.txt", "rlist2.txt", "rlist-rsa.txt", "clist.txt"]
        .map(String::from)
        .to_vec()
}

#[test]
fn thesaurus_links_raw_replies_and_remailer_pages() {
    let r = remailer("austria", "mix@example.org");
    let site = Site { base_path: "../".into(), ..site() };
    let thesaurus =
        render_thesaurus(&site, &thesaurus_rows(std::slice::from_ref(&r)), 21).expect("page");
    assert!(thesaurus.contains("href=\"1.conf\">2023-11-14 10:00</a>"), "{thesaurus}");
    assert!(thesaurus.contains("href=\"1.key\">2023-11-13 09:30</a>"));
    // `/` is escaped in attributes like every other string; the browser decodes it.
    assert!(thesaurus.contains(&format!("href=\"..&#47;{}\">austria</a>", r.page())));
    assert_eq!(count(&thesaurus, "N&#47;A") + count(&thesaurus, "N/A"), 3);
    assert!(thesaurus.contains("last 21 days") && thesaurus.contains("href=\"index.txt\""));
}

#[test]
fn remailer_pages_anchor_every_reply() {
    let mut r = remailer("austria", "mix@example.org");
    r.replies.push(ReplyView { kind: "conf".into(), received: "older".into(), body: "x".into() });
    let page = render_remailer(&site(), &r).expect("page");
    assert!(page.contains("id=\"reply-conf\"") && page.contains("id=\"reply-key\""));
    assert!(page.contains("id=\"reply-conf-2\""), "duplicate kinds get distinct ids");
}

#[test]
fn list_pages_show_the_text_with_the_legend_of_its_format() {
    let text = "Last update: Tue 14 Nov 2023 22:13:20 GMT\nalpha  ****  10:00 100.00%\n";
    let all = lists();
    let mlist = render_list_page(&site(), "mlist.txt", text, &all).expect("mlist");
    assert!(mlist.contains(&format!("<pre>{}</pre>", escape(text))), "{mlist}");
    assert!(mlist.contains("href=\"mlist.txt\">mlist.txt</a>"));
    assert!(mlist.contains("href=\"rlist2.html\">rlist2</a>"));
    assert!(!mlist.contains("href=\"mlist.html\">mlist<"), "no link to itself");
    assert!(mlist.contains("under 5 minutes") && !mlist.contains("Latent-Hist"));
    let mlist2 = render_list_page(&site(), "mlist2.txt", text, &all).expect("mlist2");
    assert!(mlist2.contains("Latent-Hist") && mlist2.contains("Options"));
    let clist = render_list_page(&site(), "clist.txt", text, &all).expect("clist");
    assert!(clist.contains("Latent-Hist") && clist.contains("names the list"));
    let split = render_list_page(&site(), "rlist-rsa.txt", text, &all).expect("split");
    assert!(split.contains("RSA keys only") && split.contains("under 5 minutes"));
    assert_eq!(list_page_name("rlist2-clear.txt"), "rlist2-clear.html");
}

#[test]
fn empty_inputs_render() {
    let s = site();
    let index = render_index(&s, &[], &[], &[], &[], &[]).expect("index");
    assert!(index.contains("No Mixmaster remailers are listed."));
    let mut bare = remailer("bare", "bare@example.org");
    bare.mix = None;
    bare.cpunk = None;
    bare.keys.clear();
    bare.replies.clear();
    bare.software = None;
    let page = render_remailer(&s, &bare).expect("page");
    assert!(page.contains("this remailer is in neither list") && page.contains("No keys known."));
    assert!(render_from_lines(&s, &[], &[]).expect("from").contains("No From: lines recorded."));
    assert!(render_thesaurus(&s, &[], 21).expect("thesaurus").contains("No remailers."));
    let list = render_list_page(&s, "mlist.txt", "", &[]).expect("list");
    assert!(list.contains("<pre></pre>"));
}

fn from_row() -> FromLineRow {
    FromLineRow {
        nick: "austria".into(),
        types: "cpunk-dsa, mix".into(),
        from: "Anonymous <nobody@example.org>".into(),
    }
}

#[test]
fn pages_have_the_basics() {
    let r = remailer("austria", "mix@example.org");
    let pages = [
        render_index(&site(), std::slice::from_ref(&r), &[], &[], &[], &[]).expect("index"),
        render_remailer(&site(), &r).expect("remailer"),
        render_from_lines(&site(), &[from_row()], &[]).expect("from"),
        render_thesaurus(&site(), &thesaurus_rows(std::slice::from_ref(&r)), 21)
            .expect("thesaurus"),
        render_list_page(&site(), "mlist2.txt", "x\n", &lists()).expect("list"),
    ];
    for html in &pages {
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("Content-Security-Policy"));
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
        assert!(html.contains("<th scope=\"col\">") || html.contains("<th scope=\"row\">"));
    }
    let index = &pages[0];
    for file in [
        "mlist.txt",
        "rlist.txt",
        "mlist2.txt",
        "rlist2.txt",
        "pubring.mix",
        "type2.list",
        "pgp-all.asc",
        "pgp-rsa.asc",
        "mlist.html",
        "rlist2.html",
        "from.html",
        "thesaurus/index.html",
        "api/v1/remailers",
        "api/v1/events",
        "events.atom",
        "metrics",
    ] {
        assert!(index.contains(&format!("href=\"{file}\"")), "no link to {file}");
    }
    assert_eq!(count(index, "<svg "), 2, "a sparkline per family row");
    assert_eq!(count(&pages[1], "<svg "), 4 + 1, "two charts per family, the uptime chart");
    assert!(pages[1].contains("Weighted fractional uptime</dt><dd>97.3%"), "{}", pages[1]);
    assert!(pages[1].contains("role=\"status\"><strong>unavailable because of hardware"));
}

#[test]
fn base_path_prefixes_links() {
    let mut s = site();
    s.base_path = "/stats/".into();
    let r = remailer("austria", "mix@example.org");
    let index = render_index(&s, std::slice::from_ref(&r), &[], &[], &[], &[]).expect("index");
    assert!(index.contains("href=\"&#47;stats&#47;mlist.txt\""));
    assert!(index.contains(&format!("href=\"&#47;stats&#47;{}\"", r.page())));
}

fn golden_view() -> (Site, Vec<RemailerView>, Vec<BrokenChain>, Vec<BrokenChain>) {
    let mut b = remailer("bogus", "bogus@example.net");
    b.cpunk = None;
    b.options = String::new();
    if let Some(mix) = b.mix.as_mut() {
        mix.reliability = "12.50%".into();
        for (i, d) in mix.days.iter_mut().enumerate() {
            d.reliability = if i % 3 == 0 { None } else { Some(i as f64 / 12.0) };
        }
    }
    let remailers = vec![remailer("austria", "mix@example.org"), b];
    let broken1 = vec![BrokenChain { left: "austria".into(), right: "*".into() }];
    (site(), remailers, broken1, Vec::new())
}

/// The index of a small fixed view, byte for byte. After an intended change, rewrite it
/// with `FATHOMETER_BLESS=1 cargo test` and review the diff.
#[test]
fn golden_index() {
    let (site, remailers, broken1, broken2) = golden_view();
    let events: Vec<EventView> = remailers.iter().flat_map(|r| r.events.clone()).collect();
    let html = render_index(&site, &remailers, &broken1, &broken2, &[], &events).expect("index");
    if std::env::var_os("FATHOMETER_BLESS").is_some() {
        std::fs::write(GOLDEN_INDEX, &html).expect("write golden");
    }
    let golden = std::fs::read_to_string(GOLDEN_INDEX).expect("read tests/golden/index.html");
    assert!(html == golden, "index differs from {GOLDEN_INDEX}; rendered:\n{html}");
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    /// Text made mostly of markup characters.
    fn hostile_text() -> impl Strategy<Value = String> {
        "[<>&\"'/=`x ë\n]{0,24}"
    }

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![Just(None), any::<f64>().prop_map(Some), (-2.0..2.0f64).prop_map(Some)]
    }

    fn day() -> impl Strategy<Value = Day> {
        (hostile_text(), value(), value()).prop_map(|(date, reliability, latency_secs)| Day {
            date,
            reliability,
            latency_secs,
        })
    }

    fn type_stats() -> impl Strategy<Value = TypeStats> {
        (hostile_text(), hostile_text(), proptest::collection::vec(day(), 0..14)).prop_map(
            |(label, history, days)| TypeStats {
                label,
                reliability: "1%".into(),
                latency: "0:01".into(),
                history,
                days,
            },
        )
    }

    fn remailer_view() -> impl Strategy<Value = RemailerView> {
        (
            [hostile_text(), hostile_text(), hostile_text(), hostile_text(), hostile_text()],
            proptest::option::of(hostile_text()),
            proptest::option::of(type_stats()),
            proptest::option::of(type_stats()),
            [hostile_text(), hostile_text(), hostile_text()],
        )
            .prop_map(
                |([nick, address, status, caps_line, options], software, mix, cpunk, t)| {
                    let [kind, received, body] = t;
                    let downtime = Some(NoticeView {
                        state: "active".to_owned(),
                        text: caps_line.clone(),
                        source: status.clone(),
                    });
                    let events = vec![EventView {
                        when: received.clone(),
                        title: nick.clone(),
                        detail: caps_line.clone(),
                        kind: options.clone(),
                        page: None,
                    }];
                    RemailerView {
                        keys: vec![KeyView {
                            ping_type: kind.clone(),
                            key_id: body.clone(),
                            valid_from: received.clone(),
                            valid_until: nick.clone(),
                            state: options.clone(),
                        }],
                        replies: vec![
                            ReplyView { kind: kind.clone(), received: received.clone(), body },
                            ReplyView { kind, received, body: caps_line.clone() },
                        ],
                        nick,
                        address,
                        status,
                        caps_line,
                        options,
                        software,
                        downtime,
                        replay: None,
                        events,
                        stability: Vec::new(),
                        yamn: mix.clone(),
                        mix,
                        cpunk,
                        counters: Counters::default(),
                    }
                },
            )
    }

    /// The same text with every markup character replaced by `x` (same length, same
    /// truthiness, so the page has the same structure).
    fn neutral(s: &str) -> String {
        s.chars().map(|c| if "<>&\"'/=`".contains(c) { 'x' } else { c }).collect()
    }

    fn neutral_stats(t: &TypeStats) -> TypeStats {
        TypeStats {
            label: neutral(&t.label),
            reliability: neutral(&t.reliability),
            latency: neutral(&t.latency),
            history: neutral(&t.history),
            days: t.days.iter().map(|d| Day { date: neutral(&d.date), ..d.clone() }).collect(),
        }
    }

    fn neutral_view(r: &RemailerView) -> RemailerView {
        RemailerView {
            nick: neutral(&r.nick),
            address: neutral(&r.address),
            status: neutral(&r.status),
            caps_line: neutral(&r.caps_line),
            options: neutral(&r.options),
            software: r.software.as_deref().map(neutral),
            mix: r.mix.as_ref().map(neutral_stats),
            cpunk: r.cpunk.as_ref().map(neutral_stats),
            yamn: r.yamn.as_ref().map(neutral_stats),
            keys: r
                .keys
                .iter()
                .map(|k| KeyView {
                    ping_type: neutral(&k.ping_type),
                    key_id: neutral(&k.key_id),
                    valid_from: neutral(&k.valid_from),
                    valid_until: neutral(&k.valid_until),
                    state: neutral(&k.state),
                })
                .collect(),
            counters: r.counters,
            replies: r
                .replies
                .iter()
                .map(|x| ReplyView {
                    kind: neutral(&x.kind),
                    received: neutral(&x.received),
                    body: neutral(&x.body),
                })
                .collect(),
            stability: Vec::new(),
            downtime: r.downtime.as_ref().map(|n| NoticeView {
                state: neutral(&n.state),
                text: neutral(&n.text),
                source: neutral(&n.source),
            }),
            replay: r
                .replay
                .as_ref()
                .map(|v| ReplayView { broken: v.broken, text: neutral(&v.text) }),
            events: r
                .events
                .iter()
                .map(|e| EventView {
                    when: neutral(&e.when),
                    title: neutral(&e.title),
                    detail: neutral(&e.detail),
                    kind: neutral(&e.kind),
                    page: None,
                })
                .collect(),
        }
    }

    fn events(rs: &[RemailerView]) -> Vec<EventView> {
        rs.iter().flat_map(|r| r.events.clone()).collect()
    }

    /// The markup characters of `hostile` all come from the templates: there are exactly as
    /// many as in the page of the neutralised data.
    fn assert_same_markup(hostile: &str, neutral: &str) {
        for c in ['<', '>', '"', '\'', '=', '`', '/'] {
            let (h, n) = (hostile.matches(c).count(), neutral.matches(c).count());
            assert_eq!(h, n, "{c:?} from the data reached the page:\n{hostile}");
        }
        assert!(!hostile.contains("<script") && !hostile.contains("<img"));
    }

    proptest! {
        #[test]
        fn any_remailer_data_renders_escaped(
            rs in proptest::collection::vec(remailer_view(), 0..4),
            nick in hostile_text(),
            from in hostile_text(),
        ) {
            let s = site();
            let ns: Vec<RemailerView> = rs.iter().map(neutral_view).collect();
            let broken = [BrokenChain { left: nick.clone(), right: from.clone() }];
            let nbroken = [BrokenChain { left: neutral(&nick), right: neutral(&from) }];
            let rows = [FromLineRow { nick: nick.clone(), types: from.clone(), from: from.clone() }];
            let nrows =
                [FromLineRow { nick: neutral(&nick), types: neutral(&from), from: neutral(&from) }];
            assert_same_markup(
                &render_index(&s, &rs, &broken, &broken, &broken, &events(&rs)).expect("index"),
                &render_index(&s, &ns, &nbroken, &nbroken, &nbroken, &events(&ns)).expect("index"),
            );
            assert_same_markup(
                &render_thesaurus(&s, &thesaurus_rows(&rs), 21).expect("thesaurus"),
                &render_thesaurus(&s, &thesaurus_rows(&ns), 21).expect("thesaurus"),
            );
            assert_same_markup(
                &render_list_page(&s, "rlist.txt", &from, &lists()).expect("list"),
                &render_list_page(&s, "rlist.txt", &neutral(&from), &lists()).expect("list"),
            );
            assert_same_markup(
                &render_from_lines(&s, &rows, &rows).expect("from"),
                &render_from_lines(&s, &nrows, &nrows).expect("from"),
            );
            for (r, n) in rs.iter().zip(&ns) {
                assert_same_markup(
                    &render_remailer(&s, r).expect("page"),
                    &render_remailer(&s, n).expect("page"),
                );
                let name = r.page();
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit() || b == b'-' || b == b'.'));
                prop_assert!(!name.contains(".."));
            }
        }

        #[test]
        fn any_numbers_make_finite_charts(days in proptest::collection::vec(day(), 0..40)) {
            let rel_bars = days.iter().filter(|d| d.reliability.is_some_and(|v| !v.is_nan())).count();
            let lat_bars = days.iter().filter(|d| d.latency_secs.is_some_and(|v| !v.is_nan())).count();
            let neutral_days: Vec<Day> =
                days.iter().map(|d| Day { date: neutral(&d.date), ..d.clone() }).collect();
            for (svg, neutral_svg, bars) in [
                (reliability_chart(&days), reliability_chart(&neutral_days), rel_bars),
                (latency_chart(&days), latency_chart(&neutral_days), lat_bars),
                (reliability_sparkline(&days), reliability_sparkline(&neutral_days), rel_bars),
            ] {
                assert_numeric(&svg);
                assert_same_markup(&svg, &neutral_svg);
                prop_assert_eq!(count(&svg, "<rect class=\"bar\""), bars);
            }
        }
    }
}

#[test]
fn the_consensus_page_shows_every_view_and_escapes_what_peers_say() {
    use crate::model::peer::{PeerList, PeerRow};
    use crate::stats::consensus::{KeyDisagreement, Snapshot, consensus};
    let row = |nick: &str, reliability: f64| PeerRow {
        nick: nick.into(),
        latency: Some(600),
        reliability,
        options: String::new(),
    };
    let list = |rows: Vec<PeerRow>| PeerList {
        kind: "Mixmaster".into(),
        generated: 1_000,
        rows,
        broken_type1: Vec::new(),
        broken_type2: Vec::new(),
        addresses: Vec::new(),
        caps_lines: Vec::new(),
    };
    let snaps = [
        Snapshot { pinger: "ours".into(), list: list(vec![row("<b>x", 99.0), row("good", 98.0)]) },
        Snapshot {
            pinger: "<i>peer".into(),
            list: list(vec![row("<b>x", 98.0), row("good", 97.0)]),
        },
        Snapshot { pinger: "third".into(), list: list(vec![row("<b>x", 1.0), row("good", 99.0)]) },
    ];
    let mix = consensus(&snaps, 2, 1_100);
    let cpunk = consensus(&[], 2, 1_100);
    let keys = [KeyDisagreement {
        address: "a@<x>.org".into(),
        family: crate::stats::consensus::KeyFamily::Openpgp,
        holders: vec![("k1".into(), vec!["ours".into()]), ("k2".into(), vec!["third".into()])],
    }];
    let peers = [PeerFetch {
        peer: "<i>peer".into(),
        file: "mlist2.txt".into(),
        fetched_at: None,
        error: Some("refused: line 1: <html>".into()),
        failures: 3,
    }];
    let page = render_consensus(&site(), &mix, &cpunk, &keys, &peers).unwrap();
    assert!(!page.contains("<b>x") && !page.contains("<i>peer") && !page.contains("<html>"));
    assert!(page.contains("&lt;b&gt;x") && page.contains("&lt;i&gt;peer"), "{page}");
    assert!(page.contains("<strong>agreed</strong>"), "{page}");
    assert!(page.contains("not agreed"), "the type I list has no pinger: {page}");
    // The third pinger's 1.0 % is the outlier, marked; the median is shown.
    assert!(page.contains("<strong title=\"outlier\">1.0% :10 ⚑</strong>"), "{page}");
    assert!(page.contains("98.0%"));
    assert!(page.contains("a@&lt;x&gt;.org") && page.contains("(3 in a row)"), "{page}");
}

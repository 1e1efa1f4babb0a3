//! Rendering tests: sorting, truncation, escaping of hostile keys in every
//! format, bpftrace-identical histogram text, and well-formed SVG/HTML.

use kgent_output::{
    parse_line, render_map, render_maps, Bucket, Bundle, MapDump, MapValue, OutputEvent,
    RenderOptions, Scalar, Stats,
};

fn dump(name: &str, value: MapValue) -> MapDump {
    MapDump {
        name: name.into(),
        value,
    }
}

fn keyed(pairs: &[(&str, i128)]) -> MapValue {
    MapValue::Keyed(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Scalar::Int(*v)))
            .collect(),
    )
}

fn parsed_map(line: &str) -> MapDump {
    match parse_line(line).expect("parses").pop() {
        Some(OutputEvent::Map(m)) => m,
        other => panic!("{other:?}"),
    }
}

fn render(d: &MapDump) -> Bundle {
    render_map(d, &RenderOptions::default())
}

/// Parses as XML (our HTML is XHTML-compatible); returns the document text.
fn xml_text(doc: &str) -> String {
    let tree = roxmltree::Document::parse(doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    tree.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

fn html_text(html: &str) -> String {
    xml_text(&format!("<div>{html}</div>"))
}

/// Checks the standalone-SVG essentials and returns the parsed document's text.
fn check_svg(svg: &str) -> String {
    let tree = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
    let root = tree.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let width: f64 = root
        .attribute("width")
        .expect("width")
        .parse()
        .expect("number");
    let height: f64 = root
        .attribute("height")
        .expect("height")
        .parse()
        .expect("number");
    assert_eq!(
        root.attribute("viewBox").expect("viewBox"),
        format!("0 0 {width} {height}")
    );
    assert!(height > 0.0 && width > 0.0);
    // Everything drawn stays inside the view box.
    for n in tree.descendants().filter(|n| n.is_element()) {
        for (attr, limit) in [("x", width), ("y", height)] {
            if let Some(v) = n.attribute(attr) {
                let v: f64 = v.parse().expect("coordinate");
                assert!((0.0..=limit).contains(&v), "{attr}={v} outside {limit}");
            }
        }
    }
    assert!(!svg.contains("<script") && !svg.contains("<style") && !svg.contains(" style="));
    xml_text(svg)
}

#[test]
fn keyed_map_sorted_by_value_then_key() {
    let d = dump(
        "@c",
        keyed(&[
            ("zsh", 3),
            ("bash", 12),
            ("sshd", 3),
            ("cron", 1),
            ("awk", 3),
        ]),
    );
    let b = render(&d);
    assert_eq!(
        b.plain,
        "@c[bash]: 12\n@c[awk]:   3\n@c[sshd]:  3\n@c[zsh]:   3\n@c[cron]:  1"
    );
    let md_rows: Vec<&str> = b.markdown.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        md_rows,
        [
            "| key | value |",
            "| :-- | --: |",
            "| bash | 12 |",
            "| awk | 3 |",
            "| sshd | 3 |",
            "| zsh | 3 |",
            "| cron | 1 |"
        ]
    );
    assert!(b.markdown.starts_with("**@c**\n\n"));
    let html_order: Vec<usize> = ["bash", "awk", "sshd", "zsh", "cron"]
        .iter()
        .map(|k| b.html.find(&format!("<td>{k}</td>")).expect(k))
        .collect();
    assert!(html_order.windows(2).all(|w| w[0] < w[1]));
    // Counts get a chart.
    let text = check_svg(b.svg.as_deref().expect("svg"));
    assert!(text.contains("bash") && text.contains("12"));
}

#[test]
fn numeric_keys_and_negative_values_sort_sensibly() {
    let d = dump("@p", keyed(&[("10", 5), ("9", 5), ("100", -2), ("a", 7)]));
    assert_eq!(
        render(&d).plain,
        "@p[a]:    7\n@p[9]:    5\n@p[10]:   5\n@p[100]: -2"
    );
    // Negative values: no bar chart.
    assert_eq!(render(&d).svg, None);
}

#[test]
fn strings_and_tuples_follow_ints() {
    let d = dump(
        "@m",
        MapValue::Keyed(vec![
            ("b".into(), Scalar::Str("bash".into())),
            (
                "t".into(),
                Scalar::Other(serde_json::json!([1, "two", [3, "x"]])),
            ),
            ("a".into(), Scalar::Int(1)),
        ]),
    );
    let b = render(&d);
    assert_eq!(b.plain, "@m[a]: 1\n@m[b]: bash\n@m[t]: (1, two, (3, x))");
    assert_eq!(b.svg, None);
}

#[test]
fn truncation_reports_hidden_rows() {
    let pairs: Vec<(String, i128)> = (0..100).map(|i| (format!("k{i:03}"), i)).collect();
    let d = dump(
        "@many",
        MapValue::Keyed(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Scalar::Int(*v)))
                .collect(),
        ),
    );
    let opts = RenderOptions {
        max_rows: 40,
        ..RenderOptions::default()
    };
    let b = render_map(&d, &opts);
    let note = "… and 60 more rows (total 100)";
    let plain: Vec<&str> = b.plain.lines().collect();
    assert_eq!(plain.len(), 41);
    assert_eq!(plain[0], "@many[k099]: 99");
    assert_eq!(plain[39], "@many[k060]: 60");
    assert_eq!(plain[40], note);
    assert!(b.markdown.ends_with(&format!("\n\n{note}")));
    assert_eq!(
        b.markdown.lines().filter(|l| l.starts_with("| k0")).count(),
        40
    );
    assert!(b.html.contains(&format!(
        "<tfoot><tr><td colspan=\"2\">{note}</td></tr></tfoot>"
    )));
    assert_eq!(b.html.matches("<tr><td>k").count(), 40);
    let svg_text = check_svg(b.svg.as_deref().expect("svg"));
    assert!(svg_text.contains(note));
    assert!(!svg_text.contains("k059"));

    // No note when everything fits.
    let b = render_map(
        &d,
        &RenderOptions {
            max_rows: 100,
            ..opts
        },
    );
    assert!(!b.plain.contains("more rows"));
}

#[test]
fn keyed_stats_truncate_too() {
    let rows = (0..5)
        .map(|i| {
            (
                format!("k{i}"),
                Stats {
                    count: i,
                    average: 1,
                    total: i as i128,
                },
            )
        })
        .collect();
    let b = render_map(
        &dump("@s", MapValue::KeyedStats(rows)),
        &RenderOptions {
            max_rows: 2,
            ..RenderOptions::default()
        },
    );
    assert_eq!(
        b.plain,
        "@s[k4]: count 4, average 1, total 4\n@s[k3]: count 3, average 1, total 3\n… and 3 more rows (total 5)"
    );
}

const HOSTILE: &str = "<script>alert(1)</script>|*_`$x$&\"'[l](j:s)\u{1b}[31m";

#[test]
fn hostile_keys_are_escaped_everywhere() {
    let d = dump("@c", keyed(&[(HOSTILE, 5), ("ok", 1)]));
    let b = render(&d);

    // Plain: verbatim except the terminal escape, which is made visible.
    assert!(b
        .plain
        .contains("<script>alert(1)</script>|*_`$x$&\"'[l](j:s)\\x1b[31m"));
    assert!(!b.plain.contains('\u{1b}'));

    // HTML: no live markup; the text survives a parse intact.
    assert!(!b.html.contains("<script"));
    assert!(b.html.contains("&lt;script&gt;"));
    let text = html_text(&b.html);
    assert!(
        text.contains("<script>alert(1)</script>|*_`$x$&\"'[l](j:s)\\x1b[31m"),
        "{text}"
    );

    // Markdown: every syntax character neutralised.
    let row = b
        .markdown
        .lines()
        .find(|l| l.contains("script"))
        .expect("row");
    assert_eq!(
        row,
        "| &lt;script&gt;alert(1)&lt;/script&gt;\\|\\*\\_\\`\\$x\\$&amp;\"'\\[l\\](j:s)\\\\x1b\\[31m | 5 |"
    );
    // A table row has exactly three unescaped pipes.
    let bare_pipes = row
        .match_indices('|')
        .filter(|(i, _)| !row[..*i].ends_with('\\'))
        .count();
    assert_eq!(bare_pipes, 3);

    // SVG: parses, shows the original text.
    let text = check_svg(b.svg.as_deref().expect("svg"));
    assert!(
        text.contains("<script>alert(1)</script>|*_`$x$&\"'[l](j:s)\\x1b[31m"),
        "{text}"
    );
}

#[test]
fn hostile_names_and_values_are_escaped() {
    let d = dump(
        "@<b>",
        MapValue::Scalar(Scalar::Str("<i>x</i> *y* | $z$".into())),
    );
    let b = render(&d);
    assert_eq!(b.plain, "@<b>: <i>x</i> *y* | $z$");
    assert_eq!(
        b.markdown,
        "**@&lt;b&gt;**: &lt;i&gt;x&lt;/i&gt; \\*y\\* \\| \\$z\\$"
    );
    assert_eq!(
        b.html,
        "<p><strong>@&lt;b&gt;</strong>: &lt;i&gt;x&lt;/i&gt; *y* | $z$</p>"
    );
    assert_eq!(html_text(&b.html), "@<b>: <i>x</i> *y* | $z$");

    let h = dump(
        "@\"h'&",
        MapValue::KeyedHist(vec![(HOSTILE.into(), vec![bucket(4, 7, 1)])]),
    );
    let b = render(&h);
    assert!(!b.html.contains("<script"));
    html_text(&b.html);
    let text = check_svg(b.svg.as_deref().expect("svg"));
    assert!(text.contains("@\"h'&"));
}

#[test]
fn control_characters_never_reach_xml() {
    let key = "a\u{0}b\u{7}c\u{ffff}d\re";
    let b = render(&dump("@c", keyed(&[(key, 1)])));
    for out in [&b.plain, &b.markdown, &b.html] {
        assert!(
            !out.contains(['\u{0}', '\u{7}', '\u{ffff}', '\r']),
            "{out:?}"
        );
    }
    html_text(&b.html);
    check_svg(b.svg.as_deref().expect("svg"));
}

#[test]
fn stack_keys_render_on_several_lines() {
    let stack = "\n    f1+1\n    f2+2\n";
    let b = render(&dump("@s", keyed(&[(stack, 3)])));
    assert_eq!(b.plain, "@s[\n    f1+1\n    f2+2\n]: 3");
    assert!(b.markdown.contains("| f1+1<br>f2+2 | 3 |"));
    assert!(b.html.contains("<td><pre>    f1+1\n    f2+2</pre></td>"));
    let text = check_svg(b.svg.as_deref().expect("svg"));
    assert!(text.contains("f1+1 f2+2"));
}

fn bucket(min: i128, max: i128, count: u64) -> Bucket {
    Bucket {
        min: Some(min),
        max: Some(max),
        count,
    }
}

#[test]
fn hist_plain_text_matches_bpftrace() {
    // @h = hist(5); hist(0); hist(-3); hist(100); hist(100); hist(2000000),
    // printed by bpftrace 0.17 with -f json and (below) without.
    let d = parsed_map(
        r#"{"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}, {"min": 1, "max": 1, "count": 0}, {"min": 2, "max": 3, "count": 0}, {"min": 4, "max": 7, "count": 1}, {"min": 8, "max": 15, "count": 0}, {"min": 16, "max": 31, "count": 0}, {"min": 32, "max": 63, "count": 0}, {"min": 64, "max": 127, "count": 2}, {"min": 128, "max": 255, "count": 0}, {"min": 256, "max": 511, "count": 0}, {"min": 512, "max": 1023, "count": 0}, {"min": 1024, "max": 2047, "count": 0}, {"min": 2048, "max": 4095, "count": 0}, {"min": 4096, "max": 8191, "count": 0}, {"min": 8192, "max": 16383, "count": 0}, {"min": 16384, "max": 32767, "count": 0}, {"min": 32768, "max": 65535, "count": 0}, {"min": 65536, "max": 131071, "count": 0}, {"min": 131072, "max": 262143, "count": 0}, {"min": 262144, "max": 524287, "count": 0}, {"min": 524288, "max": 1048575, "count": 0}, {"min": 1048576, "max": 2097151, "count": 1}]}}"#,
    );
    let expected = "@h:
(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[0]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[1]                    0 |                                                    |
[2, 4)                 0 |                                                    |
[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[8, 16)                0 |                                                    |
[16, 32)               0 |                                                    |
[32, 64)               0 |                                                    |
[64, 128)              2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[128, 256)             0 |                                                    |
[256, 512)             0 |                                                    |
[512, 1K)              0 |                                                    |
[1K, 2K)               0 |                                                    |
[2K, 4K)               0 |                                                    |
[4K, 8K)               0 |                                                    |
[8K, 16K)              0 |                                                    |
[16K, 32K)             0 |                                                    |
[32K, 64K)             0 |                                                    |
[64K, 128K)            0 |                                                    |
[128K, 256K)           0 |                                                    |
[256K, 512K)           0 |                                                    |
[512K, 1M)             0 |                                                    |
[1M, 2M)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |";
    let b = render(&d);
    assert_eq!(b.plain, expected);
    // Human labels reach every format.
    assert!(b.markdown.contains("| \\[1K, 2K) | 0 |"));
    assert!(b.markdown.contains("| \\[1M, 2M) | 1 | ██████████ |"));
    assert!(b
        .html
        .contains("<tr><td>[512, 1K)</td><td>0</td><td></td></tr>"));
    assert!(b.html.contains("<caption>@h</caption>"));
    assert!(b.html.contains("<thead><tr><th scope=\"col\">range</th>"));
    let text = check_svg(b.svg.as_deref().expect("svg"));
    assert!(text.contains("[1M, 2M)") && text.contains("[512K, 1M)") && text.contains("@h"));
}

#[test]
fn lhist_plain_text_matches_bpftrace() {
    // @l = lhist(5|-5|200, 0, 100, 10) and @m = lhist(2048, 0, 4096, 1024).
    let l = parsed_map(
        r#"{"type": "hist", "data": {"@l": [{"max": -1, "count": 1}, {"min": 0, "max": 9, "count": 1}, {"min": 10, "max": 19, "count": 0}, {"min": 20, "max": 29, "count": 0}, {"min": 30, "max": 39, "count": 0}, {"min": 40, "max": 49, "count": 0}, {"min": 50, "max": 59, "count": 0}, {"min": 60, "max": 69, "count": 0}, {"min": 70, "max": 79, "count": 0}, {"min": 80, "max": 89, "count": 0}, {"min": 90, "max": 99, "count": 0}, {"min": 100, "count": 1}]}}"#,
    );
    let expected = "@l:
(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[0, 10)                1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[10, 20)               0 |                                                    |
[20, 30)               0 |                                                    |
[30, 40)               0 |                                                    |
[40, 50)               0 |                                                    |
[50, 60)               0 |                                                    |
[60, 70)               0 |                                                    |
[70, 80)               0 |                                                    |
[80, 90)               0 |                                                    |
[90, 100)              0 |                                                    |
[100, ...)             1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|";
    assert_eq!(render(&l).plain, expected);
    let m =
        parsed_map(r#"{"type": "hist", "data": {"@m": [{"min": 2048, "max": 3071, "count": 1}]}}"#);
    assert_eq!(
        render(&m).plain,
        "@m:\n[2K, 3K)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"
    );
    // lhist(.., 10, 100, 10) below-range bucket: {"max": 9}.
    let low = dump(
        "@l",
        MapValue::Hist(vec![Bucket {
            min: None,
            max: Some(9),
            count: 1,
        }]),
    );
    assert!(render(&low).plain.starts_with("@l:\n(..., 10) "));
}

#[test]
fn big_labels_are_humanized() {
    let d = dump(
        "@big",
        MapValue::Hist(vec![
            bucket(1 << 30, (1 << 31) - 1, 2),
            bucket(1 << 40, (1 << 41) - 1, 1),
        ]),
    );
    let plain = render(&d).plain;
    assert!(plain.contains("\n[1G, 2G)               2 |"), "{plain}");
    assert!(
        plain.contains("\n[1T, 2T)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@  "),
        "{plain}"
    );
}

#[test]
fn empty_edge_buckets_are_trimmed() {
    let d = dump(
        "@h",
        MapValue::Hist(vec![
            bucket(1, 1, 0),
            bucket(2, 3, 4),
            bucket(4, 7, 0),
            bucket(8, 15, 2),
            bucket(16, 31, 0),
        ]),
    );
    let b = render(&d);
    assert_eq!(
        b.plain
            .lines()
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["@h:", "[2,", "[4,", "[8,"]
    );
    // Empty histograms say so.
    let empty = render(&dump("@h", MapValue::Hist(vec![bucket(4, 7, 0)])));
    assert_eq!(empty.plain, "@h: (empty)");
    assert_eq!(empty.markdown, "**@h**: (empty)");
    assert!(check_svg(empty.svg.as_deref().expect("svg")).contains("(empty)"));
}

#[test]
fn keyed_hist_sections_sorted_and_capped() {
    let keyed = MapValue::KeyedHist(
        (0..5)
            .map(|i| (format!("k{i}"), vec![bucket(4, 7, i + 1), bucket(8, 15, 1)]))
            .collect(),
    );
    let opts = RenderOptions {
        max_rows: 3,
        chart_width: 400,
    };
    let b = render_map(&dump("@lat", keyed), &opts);
    let titles: Vec<&str> = b.plain.lines().filter(|l| l.starts_with("@lat[")).collect();
    assert_eq!(titles, ["@lat[k4]:", "@lat[k3]:", "@lat[k2]:"]);
    assert!(b.plain.ends_with("\n\n… and 2 more keys (total 5)"));
    assert_eq!(b.html.matches("<table>").count(), 3);
    assert!(b.html.contains("<caption>@lat[k4]</caption>"));
    assert!(b.markdown.contains("**@lat\\[k4\\]**"));
    let svg = b.svg.expect("svg");
    let text = check_svg(&svg);
    assert!(text.contains("@lat[k4]") && text.contains("… and 2 more keys (total 5)"));
    assert!(svg.contains("width=\"400\""));
}

#[test]
fn stats_tables() {
    let s = Stats {
        count: 3,
        average: -2,
        total: -6,
    };
    let b = render(&dump("@s", MapValue::Stats(s)));
    assert_eq!(b.plain, "@s: count 3, average -2, total -6");
    assert!(b
        .markdown
        .contains("| count | average | total |\n| --: | --: | --: |\n| 3 | -2 | -6 |"));
    assert!(b.html.contains("<caption>@s</caption>"));
    assert!(b.html.contains("<tr><td>3</td><td>-2</td><td>-6</td></tr>"));
    assert_eq!(b.svg, None);
    html_text(&b.html);

    let k = render(&dump(
        "@ks",
        MapValue::KeyedStats(vec![
            ("a".into(), Stats { count: 1, ..s }),
            ("bb".into(), s),
        ]),
    ));
    assert_eq!(
        k.plain,
        "@ks[bb]: count 3, average -2, total -6\n@ks[a]:  count 1, average -2, total -6"
    );
    assert!(k
        .html
        .contains("<th scope=\"col\">key</th><th scope=\"col\">count</th>"));
}

#[test]
fn scalars_are_one_line() {
    let b = render(&dump("@v", MapValue::Scalar(Scalar::Int(-7))));
    assert_eq!(b.plain, "@v: -7");
    assert_eq!(b.markdown, "**@v**: -7");
    assert_eq!(b.html, "<p><strong>@v</strong>: -7</p>");
    assert_eq!(b.svg, None);
    let t = render(&dump(
        "@",
        MapValue::Scalar(Scalar::Other(serde_json::json!([1, "two"]))),
    ));
    assert_eq!(t.plain, "@: (1, two)");
}

#[test]
fn render_maps_keeps_order_and_headers() {
    let maps = [
        dump("@z", MapValue::Scalar(Scalar::Int(1))),
        dump("@a", keyed(&[("x", 2)])),
        dump("@h", MapValue::Hist(vec![bucket(4, 7, 1)])),
    ];
    let b = render_maps(&maps, &RenderOptions::default());
    let z = b.plain.find("@z: 1").expect("@z");
    let a = b.plain.find("@a[x]: 2").expect("@a");
    let h = b.plain.find("@h:\n").expect("@h");
    assert!(z < a && a < h);
    assert!(b.markdown.contains("**@z**: 1\n\n**@a**\n\n| key"));
    assert_eq!(b.html.matches("<caption>").count(), 2);
    html_text(&b.html);
    // One SVG holding both charts, in order.
    let text = check_svg(b.svg.as_deref().expect("svg"));
    let (ia, ih) = (text.find("@a").expect("@a"), text.find("@h").expect("@h"));
    assert!(ia < ih);
    assert_eq!(
        render_maps(&[], &RenderOptions::default()),
        Bundle::default()
    );
}

#[test]
fn html_is_style_and_script_free() {
    let maps = [
        dump("@c", keyed(&[("a", 1)])),
        dump(
            "@h",
            MapValue::KeyedHist(vec![("k".into(), vec![bucket(1, 1, 1)])]),
        ),
        dump("@s", MapValue::Stats(Stats::default())),
    ];
    let b = render_maps(&maps, &RenderOptions::default());
    for bad in ["<script", "<style", " style=", "javascript:"] {
        assert!(!b.html.contains(bad), "{bad}");
    }
}

#[test]
fn tiny_and_zero_options_do_not_break() {
    let d = dump("@c", keyed(&[("a", 1), ("b", 2)]));
    let b = render_map(
        &d,
        &RenderOptions {
            max_rows: 0,
            chart_width: 0,
        },
    );
    assert_eq!(b.plain, "… and 2 more rows (total 2)");
    assert_eq!(b.svg, None);
    let h = render_map(
        &dump("@h", MapValue::Hist(vec![bucket(4, 7, 1)])),
        &RenderOptions {
            max_rows: 0,
            chart_width: 1,
        },
    );
    check_svg(h.svg.as_deref().expect("svg"));
}

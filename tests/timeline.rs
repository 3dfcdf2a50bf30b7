//! `stmjit run --timeline FILE.svg` and `stmjit timeline TRACE.json -o FILE.svg`: the SVG
//! has one row per thread of the trace, and its rows' counts are the commits and aborts
//! `--stats-json` counts; each transaction is a block of its own or in an aggregated column;
//! both commands draw the same picture; `rsvg-convert` (package librsvg2-bin, installed by
//! `.ci/run`) renders it when present.

mod scratch;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn program(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A temporary file name unique to this test process and `tag`.
fn temp(tag: &str, ext: &str) -> PathBuf {
    scratch::dir("timeline").join(format!("{tag}.{ext}"))
}

fn stmjit(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run stmjit")
}

fn read(p: &Path) -> String {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{} not written: {e}", p.display()));
    let _ = std::fs::remove_file(p);
    text
}

/// The value of attribute `name` in the tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let i = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    &tag[i..i + tag[i..].find('"').unwrap()]
}

fn num(tag: &str, name: &str) -> u64 {
    attr(tag, name).parse().unwrap()
}

/// A row of the picture: its opening tag and its content.
struct Row<'a> {
    tag: &'a str,
    body: &'a str,
}

fn rows(svg: &str) -> Vec<Row<'_>> {
    svg.split("<g class=\"row\"")
        .skip(1)
        .map(|s| {
            let end = s.find('>').unwrap();
            Row {
                tag: &s[..end],
                body: &s[end..s.find("</g>").unwrap()],
            }
        })
        .collect()
}

/// Renders `svg` with rsvg-convert if it is installed; checks that a PNG of the SVG's size
/// came out. Returns whether it could.
fn render(svg: &Path, png: &Path, width: u64, height: u64) -> bool {
    let r = Command::new("rsvg-convert")
        .arg(svg)
        .arg("-o")
        .arg(png)
        .output();
    let Ok(out) = r else {
        eprintln!("note: rsvg-convert not installed (package librsvg2-bin): not rendered");
        return false;
    };
    assert!(
        out.status.success(),
        "rsvg-convert failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(png).unwrap();
    let _ = std::fs::remove_file(png);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as u64;
    assert_eq!((be(16), be(20)), (width, height), "PNG size");
    true
}

/// A contended counter (2 threads on one object, short transactions, aborts forced on top
/// of the conflicts): the picture's rows are the trace's threads, its counts the run's.
#[test]
fn the_timeline_of_a_contended_program_counts_every_transaction() {
    let (svg, json, stats) = (
        temp("run", "svg"),
        temp("run", "json"),
        temp("run-stats", "json"),
    );
    let out = stmjit(
        &[
            "run".as_ref(),
            "--threads".as_ref(),
            "2".as_ref(),
            "--timeline".as_ref(),
            svg.as_os_str(),
            "--trace".as_ref(),
            json.as_os_str(),
            "--stats-json".as_ref(),
            stats.as_os_str(),
            program("tests/trace/counter.lang").as_os_str(),
            "3000".as_ref(),
        ],
        &[("STMJIT_BUDGET", "20"), ("STMJIT_ABORT_PROBABILITY", "0.2")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_str(&read(&stats)).unwrap();
    let (commits, aborts) = (
        stats["commits"].as_u64().unwrap(),
        stats["aborts"].as_u64().unwrap(),
    );
    assert!(aborts > 0, "{stats}");
    let text = read(&svg);
    assert!(text.starts_with("<svg ") && text.ends_with("</svg>\n"));

    // Rows: one per thread track of the trace (main and the two spawned threads).
    let trace_text = std::fs::read_to_string(&json).unwrap();
    let trace: Value = serde_json::from_str(&trace_text).unwrap();
    let tracks = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .count();
    let rows = rows(&text);
    assert_eq!(rows.len(), tracks);
    assert_eq!(rows.len(), 3);
    assert_eq!(attr(rows[0].tag, "data-name"), "main");

    // Counts: each row's blocks drawn alone plus aggregated are its transactions; the rows
    // together are what --stats counts.
    let (mut c, mut a) = (0, 0);
    for r in &rows {
        let (rc, ra) = (num(r.tag, "data-commits"), num(r.tag, "data-aborts"));
        let (alone, agg) = (num(r.tag, "data-blocks"), num(r.tag, "data-aggregated"));
        assert_eq!(alone + agg, rc + ra, "{}", r.tag);
        assert_eq!(r.body.matches("<rect class=\"tx ").count() as u64, alone);
        if agg > 0 {
            assert!(r.body.contains("class=\"agg "), "{}", r.tag);
        }
        c += rc;
        a += ra;
    }
    assert_eq!((c, a), (commits, aborts));

    // The saved trace draws the same picture.
    let svg2 = temp("file", "svg");
    let out = stmjit(
        &[
            "timeline".as_ref(),
            json.as_os_str(),
            "-o".as_ref(),
            svg2.as_os_str(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&json);
    let text2 = std::fs::read_to_string(&svg2).unwrap();
    assert_eq!(text2, text);

    let head = &text[..text.find('>').unwrap()];
    let (w, h) = (num(head, "width"), num(head, "height"));
    render(&svg2, &temp("file", "png"), w, h);
    let _ = std::fs::remove_file(&svg2);
}

/// Many threads (more than segments): one row each, and the picture renders.
#[test]
fn many_threads_have_a_row_each() {
    let svg = temp("many", "svg");
    let out = stmjit(
        &[
            "run".as_ref(),
            "--threads".as_ref(),
            "4".as_ref(),
            "--timeline".as_ref(),
            svg.as_os_str(),
            program("tests/trace/counter.lang").as_os_str(),
            "200".as_ref(),
            "40".as_ref(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read(&svg);
    let rows = rows(&text);
    assert_eq!(rows.len(), 41);
    assert!(rows.iter().all(|r| num(r.tag, "data-commits") >= 1));
    let head = &text[..text.find('>').unwrap()];
    let path = temp("many2", "svg");
    std::fs::write(&path, &text).unwrap();
    render(
        &path,
        &temp("many", "png"),
        num(head, "width"),
        num(head, "height"),
    );
    let _ = std::fs::remove_file(&path);
}

/// A missing or malformed trace is an error naming the file, not a panic.
#[test]
fn a_bad_trace_is_an_error() {
    let missing = temp("missing", "json");
    let out = stmjit(&["timeline".as_ref(), missing.as_os_str()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: OSError: cannot read"), "{err}");

    let bad = temp("bad", "json");
    std::fs::write(&bad, r#"{"events": []}"#).unwrap();
    let out = stmjit(&["timeline".as_ref(), bad.as_os_str()], &[]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ValueError: ") && err.contains("traceEvents"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

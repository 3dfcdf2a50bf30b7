//! The program corpus on disk (`tests/corpus/`): one place that lists the programs and reads
//! their companion files, for the interpreter's and the JIT's corpus tests alike.

use std::path::{Path, PathBuf};

/// The corpus directory.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Names (without `.lang`) of all corpus programs, sorted.
pub fn programs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".lang").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "corpus unexpectedly small");
    names
}

/// The companion file `NAME.EXT` of a program, if it exists.
pub fn read(name: &str, ext: &str) -> Option<String> {
    std::fs::read_to_string(corpus_dir().join(format!("{name}.{ext}"))).ok()
}

/// The program's arguments: the lines of `NAME.args` (none if absent).
pub fn program_args(name: &str) -> Vec<String> {
    read(name, "args")
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

//! Scratch directories of a test process: `TMP/stmjit-TAG-PID`, removed when the process
//! exits (tests run hundreds of generated programs; left behind, one run of
//! `jit_big_sources` kept 29 MB in `/tmp`). `STMJIT_KEEP_TEST_FILES=1` keeps them, to look
//! at the programs of a failure.

use std::path::PathBuf;
use std::sync::Mutex;

/// The directories made so far, removed at exit.
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" {
    /// libc's `atexit`: runs `f` when the process exits (the test harness returns from
    /// `main` or calls `exit`, after every test has ended).
    fn atexit(f: extern "C" fn()) -> i32;
}

/// Removes the directories (a test still holding the list, which cannot happen once the
/// harness exits, leaves them).
extern "C" fn remove_all() {
    if std::env::var("STMJIT_KEEP_TEST_FILES").is_ok_and(|v| v == "1") {
        return;
    }
    if let Ok(dirs) = DIRS.try_lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The scratch directory of this process for `tag` (made if needed), removed at exit.
pub fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stmjit-{tag}-{}", std::process::id()));
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if !dirs.contains(&d) {
        if dirs.is_empty() {
            // SAFETY: `remove_all` is a plain `extern "C" fn()` that touches only statics
            // and the file system, valid to call at exit.
            unsafe { atexit(remove_all) };
        }
        dirs.push(d.clone());
    }
    std::fs::create_dir_all(&d).unwrap();
    d
}

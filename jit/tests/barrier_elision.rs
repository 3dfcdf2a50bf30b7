//! Barrier elision in the compiler, checked on the `--dump-asm` listing: one read marker
//! per object per region (no call, poll, loop header or other join in between); a call, a
//! loop header or the reassignment of the local ends it; list element granules are each
//! marked. The same for the write-barrier flag test of an instance's stores
//! (`self.a = 1; self.b = 2`). And the float bits of instance slots: tested and updated
//! only for the attribute names that some float tree stores raw.

/// Hot-path read-marker stores of each function in the `--dump-asm` listing of `src` (the
/// stores a slow path repeats to keep the region across its join are not counted).
fn hot_read_markers(src: &str) -> std::collections::HashMap<String, usize> {
    hot_sequences(src, "read-marker store")
}

/// Hot-path write-barrier flag tests of each function in the `--dump-asm` listing of `src`
/// (the tests a slow path repeats to keep the region across its join are not counted).
fn hot_flag_tests(src: &str) -> std::collections::HashMap<String, usize> {
    hot_sequences(src, "write barrier: flag test")
}

/// The sequences labelled `label` of each function in the `--dump-asm` listing of `src`,
/// outside the slow paths' region repairs and the read version's loads after calls.
fn hot_sequences(src: &str, label: &str) -> std::collections::HashMap<String, usize> {
    sequences(src, label, false, false)
}

/// [`hot_read_markers`] of the code compiled at first call, as a run without a listing
/// compiles it (`--dump-asm-at exit`): attribute reads at the slots guessed from the
/// classes made by then.
fn hot_read_markers_as_run(src: &str) -> std::collections::HashMap<String, usize> {
    sequences(src, "read-marker store", false, true)
}

/// The sequences labelled `label` of each function in the `--dump-asm` listing of `src`,
/// those of the slow paths' region repairs and the read version's loads after calls
/// included where `repairs`.
fn sequences(
    src: &str,
    label: &str,
    repairs: bool,
    at_exit: bool,
) -> std::collections::HashMap<String, usize> {
    // One program run at a time in this process.
    static RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = RUN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("stmjit_elision_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("p{:x}.lang", {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        src.hash(&mut h);
        h.finish()
    }));
    let asm = file.with_extension("asm");
    std::fs::write(&file, src).unwrap();
    let opts = stmjit_jit::program::Options {
        dump_asm: Some(Some(asm.clone())),
        dump_asm_at_exit: at_exit,
        ..stmjit_jit::program::Options::new(std::process::exit)
    };
    assert_eq!(stmjit_jit::program::run_file(&file, Vec::new(), &opts), 0);
    let text = std::fs::read_to_string(&asm).unwrap();
    let mut out = std::collections::HashMap::new();
    let mut func = String::new();
    let mut repair = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("; function ") {
            func = rest.split(':').next().unwrap().to_string();
            repair = false;
            continue;
        }
        // Only instruction lines: labels (`.L3:`) and source headings (`; 3: ...`) neither
        // start nor end an annotation range.
        if !line.starts_with("  ") {
            continue;
        }
        // An annotation range: its label on its first line, `|` on the next ones.
        repair = if line.contains("region repair") || line.contains("version reload after a call") {
            true
        } else {
            repair && line.contains("; |")
        };
        if line.contains(label) && (repairs || !repair) {
            *out.entry(func.clone()).or_insert(0) += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

const CLASS_P: &str = "class P:
    def __init__(self, x, y, z):
        self.x = x
        self.y = y
        self.z = z

def nop():
    return 0
";

#[test]
fn one_read_marker_per_object_per_region() {
    let src = format!(
        "{CLASS_P}
def three(p):
    return p.x + p.y + p.z

def two(p):
    return p.x + 0 + p.y

def two_call(p):
    return p.x + nop() + p.y

def reassign(p, q):
    a = p.x
    p = q
    return a + p.y

p = P(1, 2, 3)
print(three(p), two(p), two_call(p), reassign(p, P(4, 5, 6)))
"
    );
    let m = hot_read_markers(&src);
    // The slots are inside the instance: it is marked once for all three reads.
    assert_eq!(m["f2_three"], 1, "p.x + p.y + p.z: {m:?}");
    assert_eq!(m["f3_two"], 1, "p.x + 0 + p.y: {m:?}");
    // A call ends the region: p is marked again after it (+ the granule of global `nop`).
    assert_eq!(m["f4_two_call"], 3, "p.x + nop() + p.y: {m:?}");
    // So does assigning the local: the new p is marked.
    assert_eq!(m["f5_reassign"], 2, "a = p.x; p = q; p.y: {m:?}");
}

#[test]
fn loops_remark_each_iteration_and_list_items_each_granule() {
    let src = format!(
        "{CLASS_P}
def loop(p, n):
    t = p.x
    i = 0
    while i < n:
        t = t + p.x
        i = i + 1
    return t

def two_items(xs):
    return xs[0] + xs[1]

def same_item(xs, i):
    return xs[i] + xs[i]

p = P(1, 2, 3)
print(loop(p, 3), two_items([1, 2]), same_item([5], 0))
"
    );
    let m = hot_read_markers(&src);
    // The loop holds p's marker (it never assigns p, and its poll's slow path marks it
    // again): the read before the loop marked it, the body's needs none.
    assert_eq!(m["f2_loop"], 1, "{m:?}");
    // The list header once, each element read its granule: 1 + 2.
    assert_eq!(m["f3_two_items"], 3, "{m:?}");
    assert_eq!(m["f4_same_item"], 3, "{m:?}");
}

/// Instance stores (`o.name = v`) whose write barrier is the flag test of the instance.
const CLASS_C: &str = "class C:
    def __init__(self):
        self.a = 0
        self.b = 0
        self.c = 0

def nop():
    return 0
";

#[test]
fn one_write_barrier_flag_test_per_object_per_region() {
    let src = format!(
        "{CLASS_C}
def three(p):
    p.a = 1
    p.b = 2
    p.c = 3

class D(C):
    def three(self):
        self.a = 1
        self.b = 2
        self.c = 3

    def across_joins(self, x):
        self.a = self.b + x
        self.c = self.a + x

    def two_objects(self, o):
        self.a = 1
        o.a = 2
        self.b = 3
        o.b = 4

    def bump(self):
        self.a += 1
        self.b += 2

d = D()
three(d)
d.three()
d.across_joins(2)
d.two_objects(D())
d.bump()
print(d.a, d.b, d.c)
"
    );
    let m = hot_flag_tests(&src);
    // No call in between: the flag of `self` is tested at the first store only (and `self`
    // read-marked once: the stores' joins keep the region too).
    assert_eq!(
        m["f3_D.three"], 1,
        "self.a = 1; self.b = 2; self.c = 3: {m:?}"
    );
    assert_eq!(hot_read_markers(&src)["f3_D.three"], 1);
    assert_eq!(m["f2_three"], 1, "p.a = 1; p.b = 2; p.c = 3: {m:?}");
    // The joins of an attribute read and an addition keep it (their slow paths test again).
    assert_eq!(
        m["f4_D.across_joins"], 1,
        "self.a = self.b + x; self.c = self.a + x: {m:?}"
    );
    // One test per object.
    assert_eq!(m["f5_D.two_objects"], 2, "self, o, self, o: {m:?}");
    // An augmented assignment reads and stores through the same local.
    assert_eq!(m["f6_D.bump"], 1, "self.a += 1; self.b += 2: {m:?}");
    // Its reads mark `self` once (the slots are inside the instance).
    assert_eq!(hot_read_markers(&src)["f6_D.bump"], 1);
}

#[test]
fn a_call_a_reassignment_or_a_loop_header_brings_the_flag_test_back() {
    let src = format!(
        "{CLASS_C}
class D(C):
    def call_between(self):
        self.a = 1
        nop()
        self.b = 2

    def reassign(self, o):
        self.a = 1
        self = o
        self.b = 2

    def loop(self, n):
        self.a = 1
        i = 0
        while i < n:
            self.b = i
            self.c = i
            i = i + 1

d = D()
d.call_between()
d.reassign(D())
d.loop(3)
print(d.a, d.b, d.c)
"
    );
    let m = hot_flag_tests(&src);
    // A call may end the transaction (or collect): the store after it tests again.
    assert_eq!(
        m["f2_D.call_between"], 2,
        "self.a = 1; nop(); self.b = 2: {m:?}"
    );
    // The local holds another object.
    assert_eq!(
        m["f3_D.reassign"], 2,
        "self.a = 1; self = o; self.b = 2: {m:?}"
    );
    // The loop header is a join: 1 before the loop, 1 in its body (for two stores).
    assert_eq!(m["f4_D.loop"], 2, "{m:?}");
}

#[test]
fn float_bits_only_for_names_that_float_trees_store_raw() {
    let src = "class B:
    def __init__(self):
        self.n = 0
        self.v = 1.0
        self.w = 2.0

    def ints(self):
        self.n += 1
        self.n = self.n * 2
        return self.n + len([self.w])

    def floats(self, dt):
        self.v += dt * 0.5
        return self.v

def reads(b):
    return b.v

b = B()
b.ints()
b.floats(0.25)
print(reads(b), b.n, b.w)
";
    let m = hot_sequences(src, "float bits of an instance slot");
    // `n` and `w` are stored no float tree anywhere: their reads and stores leave the bits
    // alone (`__init__` stores only those and `v`, whose bit it clears).
    assert_eq!(m.get("f1_B.ints"), None, "{m:?}");
    // `v` is stored raw by `self.v += dt * 0.5`: a read in another function tests its bit.
    assert!(m.get("f3_reads").is_some_and(|&n| n > 0), "{m:?}");
    assert!(m.get("f2_B.floats").is_some_and(|&n| n > 0), "{m:?}");
}

#[test]
fn one_read_version_load_per_region_across_the_joins_of_fast_paths() {
    let src = "class T:
    def __init__(self):
        self.queue = [1]
        self.n = 0

    def runnable(self):
        return len(self.queue) > 0

    def after_call(self):
        a = len(self.queue)
        print(a)
        return len(self.queue)

t = T()
print(t.runnable(), t.after_call())
";
    let hot = hot_sequences(src, "read version");
    // `self` and its queue are marked with the version loaded once: the attribute read's join
    // (its slow path calls the attribute helper) does not load it again.
    assert_eq!(hot["f1_T.runnable"], 1, "{hot:?}");
    // Each slow path loads the version after its call (the join's other edge).
    let all = sequences(src, "read version", true, false);
    assert!(all["f1_T.runnable"] > hot["f1_T.runnable"], "{all:?}");
    // A call ends the region: the version is loaded again after it.
    assert_eq!(hot["f2_T.after_call"], 2, "{hot:?}");
}

#[test]
fn an_object_marker_address_is_one_rotation_of_the_reference() {
    if !std::arch::is_x86_feature_detected!("bmi2") {
        return;
    }
    let src = format!(
        "{CLASS_P}
def three(p):
    return p.x + p.y + p.z

print(three(P(1, 2, 3)))
"
    );
    // `rorx m, p, 4` (p stays live for the slot loads): no copy of p before a shift.
    let rorx = hot_sequences(&src, "rorx");
    assert_eq!(
        rorx["f2_three"],
        hot_read_markers(&src)["f2_three"],
        "{rorx:?}"
    );
}

/// A call keeps the read markers of its caller's region (it returns in the same transaction
/// or in an inevitable one: `barriers.rs`, "Marks across calls"): `p` is marked once across
/// a method call. A join statement restarts at its start, a region of its own: `p` is marked
/// again there. (`spin` has two statements so that it is called, not inlined: the way out of
/// an inlined method, to its call, does not carry the region yet.)
#[test]
fn read_markers_survive_a_method_call() {
    let src = format!(
        "{CLASS_P}
class T:
    def spin(self):
        n = 0
        return n

def across_call(p, t):
    x = p.x
    t.spin()
    return x + p.y

def nothing():
    return 0

def across_join(p, h):
    x = p.x
    r = h.join()
    return x + p.y + r

p = P(1, 2, 3)
print(across_call(p, T()), across_join(p, spawn(nothing)))
"
    );
    let m = hot_read_markers(&src);
    assert_eq!(m["f3_across_call"], 1, "p.x; t.spin(); p.y: {m:?}");
    assert_eq!(m["f5_across_join"], 2, "p.x; r = h.join(); p.y: {m:?}");
}

/// The branches of an `if` go on with the region of its condition, generic compares and
/// truth tests included (`enter_branch_target`): what every edge into the branch had,
/// the condition's slow paths repairing theirs after their calls. The join after the `if`
/// still starts an empty region.
#[test]
fn branches_keep_the_region_of_their_condition() {
    let src = format!(
        "{CLASS_P}
def compare(p):
    if p.x > 0:
        p.y = p.x
    else:
        p.z = p.x
    return 0

def truth(p):
    p.x = 1
    if p.y:
        p.z = p.y
    return 0

def mod_zero(p):
    if p.x % 2 == 0:
        return p.y
    else:
        return p.z

def after_if(p):
    if p.x > 0:
        pass
    return p.y

p = P(1, 2, 3)
print(compare(p), truth(p), mod_zero(p), after_if(p))
"
    );
    let m = hot_read_markers(&src);
    let w = hot_flag_tests(&src);
    // p marked in the condition only; one flag test in each branch.
    assert_eq!(m["f2_compare"], 1, "if p.x > 0: p.y = p.x ...: {m:?}");
    assert_eq!(w["f2_compare"], 2, "if p.x > 0: p.y = p.x ...: {w:?}");
    // p marked and its flag tested before the `if`: neither again in the branch.
    assert_eq!(m["f3_truth"], 1, "p.x = 1; if p.y: p.z = p.y: {m:?}");
    assert_eq!(w["f3_truth"], 1, "p.x = 1; if p.y: p.z = p.y: {w:?}");
    assert_eq!(
        m["f4_mod_zero"], 1,
        "if p.x % 2 == 0: return p.y else: return p.z: {m:?}"
    );
    // The join after the `if`: p marked again.
    assert_eq!(m["f5_after_if"], 2, "if p.x > 0: pass; p.y: {m:?}");
}

/// A loop holds the read markers of the locals it reads attributes of and never assigns
/// (`barriers.rs`, "Marks held around loops"): marked once before it (and again after each
/// boundary, out of line), not in each region of each iteration; an inner loop's poll and
/// join do not end them. A local the loop assigns is marked in each region, as before.
#[test]
fn loops_hold_the_marks_of_the_locals_they_do_not_assign() {
    let src = format!(
        "{CLASS_P}
def joins_in_body(p, n):
    t = 0
    i = 0
    while i < n:
        if i > 2:
            t = t + 1
        t = t + p.x
        if t > 100:
            t = 0
        t = t + p.y
        i = i + 1
    return t

def inner_loop(p, xs, n):
    t = 0
    while t < n:
        t = t + p.x
        for x in xs:
            t = t + x + p.y
        t = t + p.z
    return t

def reassigned(p, q, n):
    t = 0
    i = 0
    while i < n:
        t = t + p.x
        if t > 100:
            t = 0
        t = t + p.y
        p = q
        i = i + 1
    return t

p = P(1, 2, 3)
print(joins_in_body(p, 5), inner_loop(p, [1, 2], 20), reassigned(p, P(4, 5, 6), 3))
"
    );
    let m = hot_read_markers(&src);
    // p once before the loop (the two joins in the body start regions that hold it).
    assert_eq!(m["f2_joins_in_body"], 1, "{m:?}");
    // p before the outer loop, the list before the inner one, and each item's granule.
    assert_eq!(m["f3_inner_loop"], 3, "{m:?}");
    // p is assigned in the loop: marked after the header and after the join.
    assert_eq!(m["f4_reassigned"], 2, "{m:?}");
}

/// A float local assigned a float tree (`dx = q.x - 1.0`, kept unboxed: `unboxed.rs`) keeps
/// the region across the join of the tree's fast and generic paths (the generic path repairs
/// it after its calls), so the statements after it do not mark `q` again (issue 16: each
/// statement of n-body's inner loop marked its objects and loaded the read version again).
#[test]
fn a_float_local_assignment_keeps_the_region() {
    let src = format!(
        "{CLASS_P}
def pairs(ps):
    t = 0.0
    for i in range(len(ps)):
        q = ps[i]
        dx = q.x - 1.0
        dy = q.y - 2.0
        dz = q.z - 3.0
        q.x += dx * 0.5
        q.y += dy * 0.5
        q.z += dz * 0.5
        t += dx * dx + dy * dy + dz * dz
    return t

print(pairs([P(1.5, 2.5, 3.5), P(0.5, 0.25, 0.125)]))
"
    );
    let m = hot_read_markers(&src);
    // Three for the loop's list (`len(ps)`, the held list, ...), two for `ps[i]` (the list,
    // the item's granule), and `q` once, at `q.x`: not again at `q.y`, `q.z` and the stores.
    assert_eq!(m["f2_pairs"], 6, "{m:?}");
    // The read version: loaded once before the loop (and after the slow paths' calls), not
    // per statement, region or iteration.
    let rv = hot_sequences(&src, "read version");
    assert_eq!(rv["f2_pairs"], 1, "{rv:?}");
}

/// Reads at a guessed slot (compiled at the first call, once the class has its shape) keep
/// the region: the object is marked once for all of them, as the site-cache reads are.
#[test]
fn guessed_slot_reads_mark_their_object_once() {
    let src = format!(
        "{CLASS_P}
def three(p):
    return p.x + p.y + p.z

p = P(1, 2, 3)
print(three(p))
"
    );
    let m = hot_read_markers_as_run(&src);
    // `p` is marked at `p.x`, on each of its two ways (the guessed slot, the site's cache
    // probe where the guess fails), and not again at `p.y` and `p.z`.
    assert_eq!(m["f2_three"], 2, "p.x + p.y + p.z at guessed slots: {m:?}");
}

/// In a loop, the read version is loaded before the loop and right after each call that
/// may end the transaction, and every read marker takes it from there: the iterations, the
/// joins of the fast paths and the polls' fast paths load it no more (issue 14: richards'
/// scheduler loop loaded it twice per task scanned, for the scanned task and its queue).
#[test]
fn a_loop_loads_the_read_version_before_it_and_after_calls_only() {
    let src = "class T:
    def __init__(self, n):
        self.q = [n]
        self.n = n

def scan(ts):
    c = 0
    for t in ts:
        if len(t.q) > 0 and t.n > 1:
            c += t.n
    return c

def scan_calling(ts):
    c = 0
    for t in ts:
        if t.n > 1:
            c += len(t.q)
        print(c)
        c += t.n
    return c

ts = [T(1), T(2), T(3)]
print(scan(ts), scan_calling(ts))
";
    let hot = hot_sequences(src, "read version");
    // The load before the loop only: its header, its joins and its poll read the variable.
    assert_eq!(hot["f1_scan"], 1, "{hot:?}");
    assert_eq!(hot["f2_scan_calling"], 1, "{hot:?}");
    // `print` may end the transaction: the version is loaded again after it (not counted
    // above), which the markers after it take.
    let all = sequences(src, "version reload after a call", true, false);
    assert!(
        all.get("f2_scan_calling").is_some_and(|&n| n >= 1),
        "{all:?}"
    );
    // The markers are all there: the list, each item's granule, `t` and its queue.
    let m = hot_read_markers(src);
    assert!(m["f1_scan"] >= 4, "{m:?}");
}

//! Barriers in the object model's operations, checked on the read markers themselves:
//! immutable objects (str, float, function objects) are read without a read barrier;
//! mutable ones (list header, list element granule, dict, instance) are marked; objects
//! allocated in the running transaction carry no write-barrier flag, so their writes never
//! take the slow path, while old (committed) ones do.

use std::sync::Arc;
use stmjit_runtime::value::from_int;
use stmjit_runtime::{Stm, StmConfig, FLAGS_OFFSET, WRITE_BARRIER_FLAG};
use stmjit_vm::objects::ARRAY_DATA;
use stmjit_vm::{ProgramInfo, Runtime, Settings};

struct Fixture {
    stm: Arc<Stm>,
    th: Box<stmjit_runtime::StmThread>,
    rt: Box<Runtime>,
}

fn fixture() -> Fixture {
    let stm = Stm::new(StmConfig {
        num_segments: 2,
        segment_size: 1 << 30,
        ..StmConfig::default()
    })
    .unwrap();
    let types = stmjit_vm::objects::register(&stm);
    let mut th = Box::new(stm.thread());
    th.begin();
    let base = stm.segment_base(th.segment());
    let program = Arc::new(stmjit_lang::parse("pass\n").unwrap());
    let info = ProgramInfo::new(
        program,
        "t.lang",
        Vec::new(),
        std::process::exit,
        Settings::default(),
        stm.clone(),
        types,
        1 << 28,
    );
    let th_ptr: *mut stmjit_runtime::StmThread = &mut *th;
    // SAFETY: th is boxed and kept in the fixture with the runtime, on this thread.
    let rt = Box::new(unsafe { Runtime::for_thread(Arc::new(info), th_ptr, base) });
    Fixture { stm, th, rt }
}

impl Fixture {
    fn marked(&self, addr: u64) -> bool {
        let seg = self.th.segment();
        let rv = self
            .stm
            .segment_info(seg)
            .read_version
            .load(std::sync::atomic::Ordering::SeqCst);
        self.stm.read_marker(seg, addr) == rv
    }

    /// Commits and starts the next transaction, keeping `words` (rooted) up to date.
    fn next_transaction(&mut self, words: &mut [u64]) {
        let roots: Vec<_> = words.iter().map(|&w| self.rt.root(w)).collect();
        self.th.commit().unwrap();
        self.th.begin();
        self.rt.seg_base = self.stm.segment_base(self.th.segment());
        for (w, r) in words.iter_mut().zip(roots) {
            *w = self.rt.get(r);
        }
    }
}

#[test]
fn immutable_objects_are_read_without_read_barrier() {
    let mut f = fixture();
    let s = f.rt.new_str("hello").unwrap();
    let x = f.rt.new_float(2.5).unwrap();
    let l = f.rt.new_list(&[from_int(7).unwrap()]).unwrap();
    let mut w = [s, x, l];
    f.next_transaction(&mut w);
    let [s, x, l] = w;
    assert!(!f.marked(s) && !f.marked(x) && !f.marked(l));
    assert_eq!(f.rt.str_of(s), "hello");
    assert_eq!(f.rt.float_of(x), 2.5);
    assert!(f.rt.truthy(s) && f.rt.truthy(x));
    assert!(f.rt.key_of(s).is_ok());
    assert!(!f.marked(s), "str read must not mark");
    assert!(!f.marked(x), "float read must not mark");
    // A list read marks its header, and an element read marks the element's own granule
    // (card-marked items array), not the array's header.
    assert_eq!(f.rt.list_len(l), 1);
    assert!(f.marked(l), "list header read must mark");
    let items = f.rt.ld(
        l,
        std::mem::offset_of!(stmjit_vm::objects::ListObj, items) as u64,
    );
    assert!(!f.marked(items + ARRAY_DATA));
    assert_eq!(f.rt.list_get(l, 0), from_int(7).unwrap());
    assert!(
        f.marked(items + ARRAY_DATA),
        "element read marks its granule"
    );
    assert!(
        !f.marked(items),
        "element read does not mark the array header"
    );
}

#[test]
fn new_objects_skip_the_write_barrier_slow_path_old_ones_take_it() {
    let mut f = fixture();
    let d = f.rt.new_dict().unwrap();
    let flag = |f: &Fixture, r: u64| {
        // SAFETY: r is a live object of the running segment.
        unsafe { *((f.rt.seg_base + r + FLAGS_OFFSET) as *const u8) & WRITE_BARRIER_FLAG != 0 }
    };
    assert!(
        !flag(&f, d),
        "an object of this transaction has no write-barrier flag"
    );
    let mut w = [d];
    f.next_transaction(&mut w);
    let [d] = w;
    assert!(flag(&f, d), "a committed object has the write-barrier flag");
    // Writing an existing key's value touches only the entry's card; the dict header keeps
    // its flag (no whole-object write lock).
    f.rt.dict_set(d, from_int(1).unwrap(), from_int(2).unwrap())
        .unwrap();
    let mut w = [d];
    f.next_transaction(&mut w);
    let [d] = w;
    f.rt.dict_set(d, from_int(1).unwrap(), from_int(3).unwrap())
        .unwrap();
    assert!(
        flag(&f, d),
        "updating an existing key does not write-barrier the dict header"
    );
    assert_eq!(
        f.rt.dict_get(d, from_int(1).unwrap()).unwrap(),
        Some(from_int(3).unwrap())
    );
}

//! The bank of `benches/programs/bank.lang` on the Rust `stm` crate: the same chunks, LCG and
//! transfers, each transfer one `atomically` transaction over two `TVar<i64>` accounts.
//!
//! usage: bank-stm N THREADS [ACCOUNTS]   prints: bank N ACCOUNTS TOTAL WEIGHTED

use std::sync::Arc;
use stm::{atomically, TVar};

const CHUNKS: i64 = 64;
const INITIAL: i64 = 1000;

fn lcg(x: i64) -> i64 {
    (x * 1103515245 + 12345) % 2147483648
}

fn worker(accounts: &[TVar<i64>], n: i64, first: i64, step: i64) {
    let na = accounts.len() as i64;
    let mut c = first;
    while c < CHUNKS {
        let (lo, hi) = (n * c / CHUNKS, n * (c + 1) / CHUNKS);
        let mut x = c + 1;
        for _ in lo..hi {
            x = lcg(x);
            let a = x % na;
            x = lcg(x);
            let mut b = x % na;
            x = lcg(x);
            let amount = x % 100 + 1;
            if a == b {
                b = (b + 1) % na;
            }
            let (src, dst) = (&accounts[a as usize], &accounts[b as usize]);
            atomically(|tx| {
                src.modify(tx, |v| v - amount)?;
                dst.modify(tx, |v| v + amount)
            });
        }
        c += step;
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: i64| argv.get(i).map_or(d, |s| s.parse().expect("an integer"));
    let n = arg(1, 20000);
    let t = arg(2, 1);
    let na = arg(3, 64);
    let accounts: Arc<Vec<TVar<i64>>> = Arc::new((0..na).map(|_| TVar::new(INITIAL)).collect());
    let handles: Vec<_> = (0..t)
        .map(|k| {
            let accounts = Arc::clone(&accounts);
            std::thread::spawn(move || worker(&accounts, n, k, t))
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    let (mut total, mut weighted) = (0i64, 0i64);
    for (i, a) in accounts.iter().enumerate() {
        let v = a.read_atomic();
        total += v;
        weighted += (i as i64 + 1) * v;
    }
    println!("bank {n} {na} {total} {weighted}");
}

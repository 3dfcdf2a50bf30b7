#!/bin/sh
# Single-threaded figures of the JIT against the interpreter, PyPy3 and C (medians of 5).
# Usage: jit/benches/programs/run.sh [path/to/stmjit]   (pypy3 and gcc optional; INTERP=1 adds
# the reference interpreter on primes, which takes about a minute per run)
set -e
here=$(cd "$(dirname "$0")" && pwd)
stmjit=${1:-$here/../../../target/release/stmjit}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { # command... -> median wall seconds of 5 runs
    for i in 1 2 3 4 5; do
        /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1
    done | median
}
gcc -O2 -o /tmp/stmjit_primes_c "$here/primes.c" 2>/dev/null && echo "primes C -O2:      $(t /tmp/stmjit_primes_c) s"
for p in primes bintrees queens; do
    echo "$p stmjit (JIT):  $(t "$stmjit" run "$here/$p.lang") s"
    if command -v pypy3 >/dev/null; then echo "$p pypy3:         $(t pypy3 "$here/$p.lang") s"; fi
done
if [ -n "$INTERP" ]; then echo "primes stmjit --interp: $(t "$stmjit" run --interp "$here/primes.lang") s"; fi

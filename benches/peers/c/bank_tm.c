/* The bank of programs/bank.lang in C with GCC's transactional memory (-fgnu-tm, libitm):
   the same chunks, LCG and transfers, each transfer in __transaction_atomic.
   Run with ITM_DEFAULT_METHOD=ml_wt or gl_wt (software) or unset (libitm's default).
   usage: bank_tm N THREADS [ACCOUNTS]   prints: bank N ACCOUNTS TOTAL WEIGHTED */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNKS 64
#define INITIAL 1000

/* One account per cache line, as stmjit's Account objects are separate objects. */
struct account { long balance; char pad[56]; };

static struct account *accounts;
static long naccounts, ntransfers;

struct job { int first, step; };

static long lcg(long x) { return (x * 1103515245L + 12345) % 2147483648L; }

static void *worker(void *p) {
    struct job *j = p;
    for (long c = j->first; c < CHUNKS; c += j->step) {
        long lo = ntransfers * c / CHUNKS, hi = ntransfers * (c + 1) / CHUNKS;
        long x = c + 1;
        for (long i = lo; i < hi; i++) {
            x = lcg(x); long a = x % naccounts;
            x = lcg(x); long b = x % naccounts;
            x = lcg(x); long amount = x % 100 + 1;
            if (a == b) b = (b + 1) % naccounts;
            __transaction_atomic {
                accounts[a].balance -= amount;
                accounts[b].balance += amount;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    ntransfers = argc > 1 ? atol(argv[1]) : 20000;
    int t = argc > 2 ? atoi(argv[2]) : 1;
    naccounts = argc > 3 ? atol(argv[3]) : 64;
    accounts = aligned_alloc(64, sizeof(struct account) * naccounts);
    for (long i = 0; i < naccounts; i++) accounts[i].balance = INITIAL;
    pthread_t th[t];
    struct job jobs[t];
    for (int k = 0; k < t; k++) {
        jobs[k] = (struct job){k, t};
        pthread_create(&th[k], NULL, worker, &jobs[k]);
    }
    for (int k = 0; k < t; k++) pthread_join(th[k], NULL);
    long total = 0, weighted = 0;
    for (long i = 0; i < naccounts; i++) {
        total += accounts[i].balance;
        weighted += (i + 1) * accounts[i].balance;
    }
    printf("bank %ld %ld %ld %ld\n", ntransfers, naccounts, total, weighted);
    return 0;
}

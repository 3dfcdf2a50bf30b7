/* N-queens with pthreads: first-row columns dealt to threads, as programs/nqueens.lang.
   usage: nqueens N THREADS   prints: nqueens N SOLUTIONS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct job { long n, first, step, total; };

static long solve(long full, long cols, long ld, long rd) {
    if (cols == full) return 1;
    long count = 0, avail = ~(cols | ld | rd) & full;
    while (avail) {
        long bit = avail & -avail;
        avail -= bit;
        count += solve(full, cols | bit, ((ld | bit) << 1) & full, (rd | bit) >> 1);
    }
    return count;
}

static void *worker(void *p) {
    struct job *j = p;
    long full = (1L << j->n) - 1;
    for (long c = j->first; c < j->n; c += j->step) {
        long bit = 1L << c;
        j->total += solve(full, bit, (bit << 1) & full, bit >> 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 8;
    int t = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t th[t];
    struct job jobs[t];
    for (int k = 0; k < t; k++) {
        jobs[k] = (struct job){n, k, t, 0};
        pthread_create(&th[k], NULL, worker, &jobs[k]);
    }
    long total = 0;
    for (int k = 0; k < t; k++) {
        pthread_join(th[k], NULL);
        total += jobs[k].total;
    }
    printf("nqueens %ld %ld\n", n, total);
    return 0;
}

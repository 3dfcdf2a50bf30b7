/* Counting primes with pthreads: the same trial division and split as programs/primes.lang
   (chunks of CHUNK numbers dealt round robin).
   usage: primes N THREADS   prints: primes N COUNT SUM */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK 1000

struct job { long k, t, n, count, sum; };

static int is_prime(long n) {
    if (n < 2) return 0;
    if (n % 2 == 0) return n == 2;
    for (long i = 3; i * i <= n; i += 2)
        if (n % i == 0) return 0;
    return 1;
}

static void *count(void *p) {
    struct job *j = p;
    for (long lo = j->k * CHUNK; lo < j->n; lo += j->t * CHUNK) {
        long hi = lo + CHUNK < j->n ? lo + CHUNK : j->n;
        for (long n = lo; n < hi; n++)
            if (is_prime(n)) { j->count++; j->sum += n; }
    }
    return NULL;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int t = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t th[t];
    struct job jobs[t];
    for (int k = 0; k < t; k++) {
        jobs[k] = (struct job){k, t, n, 0, 0};
        pthread_create(&th[k], NULL, count, &jobs[k]);
    }
    long total = 0, sum = 0;
    for (int k = 0; k < t; k++) {
        pthread_join(th[k], NULL);
        total += jobs[k].count;
        sum += jobs[k].sum;
    }
    printf("primes %ld %ld %ld\n", n, total, sum);
    return 0;
}

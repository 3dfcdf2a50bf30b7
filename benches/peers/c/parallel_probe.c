/* The machine's real parallelism, for the report: THREADS threads share ITERATIONS iterations of
   a busy loop. On a machine that gives each thread its own core, T threads take 1/T of the time.
   usage: parallel_probe THREADS ITERATIONS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long per_thread;

static void *spin(void *p) {
    volatile long x = 0;
    for (long i = 0; i < per_thread; i++) x += i;
    (void)p;
    return NULL;
}

int main(int argc, char **argv) {
    int t = argc > 1 ? atoi(argv[1]) : 1;
    per_thread = (argc > 2 ? atol(argv[2]) : 2000000000L) / t;
    pthread_t th[t];
    for (int k = 0; k < t; k++) pthread_create(&th[k], NULL, spin, NULL);
    for (int k = 0; k < t; k++) pthread_join(th[k], NULL);
    return 0;
}

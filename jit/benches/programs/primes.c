#include <stdio.h>
static int is_prime(long n){ if(n<2) return 0; for(long i=2;i*i<=n;i++) if(n%i==0) return 0; return 1; }
int main(){ long c=0; for(long n=0;n<3000000;n++) if(is_prime(n)) c++; printf("primes below 3000000 : %ld\n", c); return 0; }

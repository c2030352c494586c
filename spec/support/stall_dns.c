/*
 * stall_dns.c - an LD_PRELOAD shim around getaddrinfo for the specs (spec/async/resolve_spec.lua):
 * a resolver that stalls, as the system's does when it drops a burst of lookups.
 *
 *   CIO_STALL_DNS_HOSTS=a.test,b.test   names whose lookup sleeps CIO_STALL_DNS_SECONDS
 *                                       (default 3) and then gives 127.0.0.1
 *   CIO_FAIL_DNS_HOSTS=c.test           names that do not exist (EAI_NONAME at once)
 *   any other name ending in ".test"    127.0.0.1 at once
 *   CIO_STALL_DNS_LOG=path              one line per lookup ("host\n"), appended
 *   anything else                       the real getaddrinfo
 *
 *   cc -shared -fPIC -o stall_dns.so spec/support/stall_dns.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static int stall_listed(const char *var, const char *host) {
  const char *list = getenv(var);
  size_t n = strlen(host);
  while (list != NULL && *list != '\0') {
    const char *end = strchr(list, ',');
    size_t len = end ? (size_t)(end - list) : strlen(list);
    if (len == n && strncmp(list, host, n) == 0) return 1;
    list = end ? end + 1 : NULL;
  }
  return 0;
}

static int stall_is_test(const char *host) {
  size_t n = strlen(host);
  return n > 5 && strcmp(host + n - 5, ".test") == 0;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  const char *log = getenv("CIO_STALL_DNS_LOG");
  if (real == NULL) return EAI_SYSTEM;
  if (node == NULL) return real(node, service, hints, res);
  if (log != NULL) {
    FILE *f = fopen(log, "a");
    if (f != NULL) {
      fprintf(f, "%s\n", node);
      fclose(f);
    }
  }
  if (stall_listed("CIO_FAIL_DNS_HOSTS", node)) return EAI_NONAME;
  if (stall_listed("CIO_STALL_DNS_HOSTS", node)) {
    const char *s = getenv("CIO_STALL_DNS_SECONDS");
    double seconds = s ? atof(s) : 3.0;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {
    }
    return real("127.0.0.1", service, hints, res);
  }
  if (stall_is_test(node)) return real("127.0.0.1", service, hints, res);
  return real(node, service, hints, res);
}

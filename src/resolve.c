/*
 * resolve.c - host name resolution on detached threads of ours, so that a stalled
 * getaddrinfo never blocks the thread that drives the transfers (see resolve.h).
 *
 * A resolver is shared by its owner and by the lookups running for it, and counted: the owner
 * drops its reference with cio_resolver_free, and whoever drops the last one (the owner, or
 * the thread of the last lookup to finish) frees it. Nothing ever waits for a thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "resolve.h"

/* Addresses kept per host (libcurl tries them in order). */
#define RESOLVE_MAX_ADDRS 8

typedef struct resolve_entry {
  struct resolve_entry *next;
  char *host;
  int state;   /* CIO_RESOLVE_PENDING, _OK or _FAILED */
  int started; /* a thread is resolving it */
  char *addrs; /* "a,[b]" for CURLOPT_RESOLVE */
  char error[128];
  int64_t expires; /* when not pending */
} resolve_entry;

struct cio_resolver {
  pthread_mutex_t mu;
  int refs;    /* the owner's, plus one per running lookup */
  int running; /* lookups running */
  resolve_entry *entries;
};

typedef struct {
  cio_resolver *r;
  resolve_entry *entry; /* stays alive while pending: only finished entries are pruned */
} resolve_job;

int64_t cio_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cio_resolver *cio_resolver_new(void) {
  cio_resolver *r = (cio_resolver *)calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  if (pthread_mutex_init(&r->mu, NULL) != 0) {
    free(r);
    return NULL;
  }
  r->refs = 1;
  return r;
}

static void resolve_entry_free(resolve_entry *e) {
  free(e->host);
  free(e->addrs);
  free(e);
}

static void resolver_destroy(cio_resolver *r) {
  resolve_entry *e, *next;
  for (e = r->entries; e != NULL; e = next) {
    next = e->next;
    resolve_entry_free(e);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* Drop one reference (the mutex is held); frees the resolver after unlocking when it was the
 * last. */
static void resolver_unref_locked(cio_resolver *r) {
  int last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  if (last) resolver_destroy(r);
}

void cio_resolver_free(cio_resolver *r) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->mu);
  resolver_unref_locked(r);
}

/* "a,[b],..." from a getaddrinfo result; NULL when out of memory or no usable address. */
static char *resolve_format(const struct addrinfo *ai) {
  char one[INET6_ADDRSTRLEN + 2];
  char *out;
  size_t len = 0, cap = RESOLVE_MAX_ADDRS * sizeof one + 1;
  int n = 0;
  out = (char *)malloc(cap);
  if (out == NULL) return NULL;
  out[0] = '\0';
  for (; ai != NULL && n < RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN];
    if (ai->ai_family == AF_INET) {
      if (inet_ntop(AF_INET, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, text, sizeof text) == NULL)
        continue;
      snprintf(one, sizeof one, "%s", text);
    } else if (ai->ai_family == AF_INET6) {
      if (inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, text, sizeof text) == NULL)
        continue;
      snprintf(one, sizeof one, "[%s]", text);
    } else {
      continue;
    }
    if (strstr(out, one) != NULL) continue; /* one per address */
    len += (size_t)snprintf(out + len, cap - len, "%s%s", n > 0 ? "," : "", one);
    n++;
  }
  if (n == 0) {
    free(out);
    return NULL;
  }
  return out;
}

static void *resolve_thread(void *arg) {
  resolve_job *job = (resolve_job *)arg;
  cio_resolver *r = job->r;
  resolve_entry *e = job->entry;
  struct addrinfo hints, *res = NULL;
  char *addrs = NULL;
  int rc;
  free(job);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* e->host does not change while the entry is pending, so it is read without the mutex. */
  rc = getaddrinfo(e->host, NULL, &hints, &res);
  if (rc == 0) addrs = resolve_format(res);
  if (res != NULL) freeaddrinfo(res);
  pthread_mutex_lock(&r->mu);
  e->started = 0;
  r->running--;
  if (addrs != NULL) {
    e->state = CIO_RESOLVE_OK;
    e->addrs = addrs;
    e->expires = cio_now_ms() + CIO_RESOLVE_TTL_MS;
  } else {
    e->state = CIO_RESOLVE_FAILED;
    snprintf(e->error, sizeof e->error, "%s", rc != 0 ? gai_strerror(rc) : "no usable address");
    e->expires = cio_now_ms() + CIO_RESOLVE_FAIL_TTL_MS;
  }
  resolver_unref_locked(r);
  return NULL;
}

/* A lookup's thread may outlive the Lua state that started it, and lua_close dlcloses C
 * modules: keep this library loaded for the life of the process (RTLD_NODELETE) before the
 * first thread starts, as the queue does for its atexit hook. */
static pthread_once_t resolve_pin_once = PTHREAD_ONCE_INIT;
static int resolve_pinned;

static void resolve_pin(void) {
  Dl_info info;
  if (dladdr((void *)&resolve_thread, &info) == 0 || info.dli_fname == NULL) return;
  resolve_pinned = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != NULL;
}

/* Start the lookup of e on a detached thread (the mutex is held). 0, or -1 when no thread
 * could be started (e is then left waiting, and tried again by a later call). */
static int resolve_start(cio_resolver *r, resolve_entry *e) {
  pthread_attr_t attr;
  pthread_t thread;
  resolve_job *job;
  int rc;
  if (r->running >= CIO_RESOLVE_MAX_THREADS) return -1;
  pthread_once(&resolve_pin_once, resolve_pin);
  if (!resolve_pinned) return -1; /* the lookup waits: a thread could outlive its code */
  job = (resolve_job *)malloc(sizeof *job);
  if (job == NULL) return -1;
  job->r = r;
  job->entry = e;
  if (pthread_attr_init(&attr) != 0) {
    free(job);
    return -1;
  }
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&thread, &attr, resolve_thread, job);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(job);
    return -1;
  }
  e->started = 1;
  r->running++;
  r->refs++;
  return 0;
}

/* The entry of host (the mutex is held), created when missing; drops finished entries that
 * expired. NULL when out of memory. */
static resolve_entry *resolve_entry_for(cio_resolver *r, const char *host, int64_t now) {
  resolve_entry **p = &r->entries, *e, *found = NULL;
  while ((e = *p) != NULL) {
    if (e->state != CIO_RESOLVE_PENDING && e->expires <= now) {
      *p = e->next;
      resolve_entry_free(e);
      continue;
    }
    if (strcasecmp(e->host, host) == 0) found = e;
    p = &e->next;
  }
  if (found != NULL) return found;
  e = (resolve_entry *)calloc(1, sizeof *e);
  if (e == NULL || (e->host = strdup(host)) == NULL) {
    free(e);
    return NULL;
  }
  e->next = r->entries;
  r->entries = e;
  return e;
}

static int resolve_is_literal(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return host[0] == '[' || inet_pton(AF_INET, host, buf) == 1;
}

int cio_resolve_target(const char *url, char **host, char **port) {
  CURLU *u = curl_url();
  char *h = NULL, *p = NULL;
  int want;
  *host = *port = NULL;
  if (u == NULL) return -1;
  want = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK && h[0] != '\0' && !resolve_is_literal(h);
  if (want) {
    *host = strdup(h);
    *port = strdup(p);
  }
  curl_free(h);
  curl_free(p);
  curl_url_cleanup(u);
  if (want && (*host == NULL || *port == NULL)) {
    free(*host);
    free(*port);
    *host = *port = NULL;
    return -1;
  }
  return 0;
}

int cio_resolve_host(cio_resolver *r, const char *host, const char *port, struct curl_slist **list, char *errbuf) {
  int result;
  resolve_entry *e;
  pthread_mutex_lock(&r->mu);
  e = resolve_entry_for(r, host, cio_now_ms());
  if (e == NULL) {
    result = CIO_RESOLVE_NOMEM;
  } else if (e->state == CIO_RESOLVE_PENDING) {
    if (!e->started) resolve_start(r, e);
    result = CIO_RESOLVE_PENDING;
  } else if (e->state == CIO_RESOLVE_FAILED) {
    snprintf(errbuf, CURL_ERROR_SIZE, "Could not resolve host: %s (%s)", host, e->error);
    result = CIO_RESOLVE_FAILED;
  } else {
    size_t need = strlen(host) + strlen(port) + strlen(e->addrs) + 3;
    char *entry = (char *)malloc(need);
    struct curl_slist *grown = NULL;
    if (entry != NULL) {
      snprintf(entry, need, "%s:%s:%s", host, port, e->addrs);
      grown = curl_slist_append(*list, entry);
      free(entry);
    }
    if (grown == NULL) {
      result = CIO_RESOLVE_NOMEM;
    } else {
      *list = grown;
      result = CIO_RESOLVE_OK;
    }
  }
  pthread_mutex_unlock(&r->mu);
  return result;
}

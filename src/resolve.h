/*
 * resolve.h - host name resolution that never stalls the caller. libcurl's threaded resolver
 * joins its thread on the caller's thread when a transfer whose lookup is pending is removed,
 * so a stalled getaddrinfo blocks whoever removes it (a poll, a worker's shutdown). Here each
 * lookup runs on a detached thread of ours that hands its result back under a mutex; the
 * caller asks again later (never waits), and gives libcurl the addresses with CURLOPT_RESOLVE
 * so that libcurl never resolves by itself. A lookup that outlives its call is abandoned: the
 * thread finishes on its own and frees what it owns. Results are cached per resolver (one
 * lookup for many calls to one host). Does not involve Lua (the queue worker may use it).
 * Defined in resolve.c.
 */
#ifndef CIO_RESOLVE_H
#define CIO_RESOLVE_H

#include <stdint.h>

#include <curl/curl.h>

/* How long a result is reused: libcurl's own DNS cache keeps entries 60 s; a failure is
 * retried after 1 s. At most this many lookups run at once per resolver (others wait). */
#define CIO_RESOLVE_TTL_MS 60000
#define CIO_RESOLVE_FAIL_TTL_MS 1000
#define CIO_RESOLVE_MAX_THREADS 8

typedef struct cio_resolver cio_resolver;

enum { CIO_RESOLVE_PENDING = 0, CIO_RESOLVE_OK = 1, CIO_RESOLVE_FAILED = 2, CIO_RESOLVE_NOMEM = 3 };

/* Milliseconds of a monotonic clock (CLOCK_MONOTONIC). */
int64_t cio_now_ms(void);

/* NULL when out of memory. */
cio_resolver *cio_resolver_new(void);

/* Drop the owner's reference: lookups still running finish on their threads, and the last
 * one frees the resolver. Never waits. */
void cio_resolver_free(cio_resolver *r);

/* The host and port of url that libcurl would resolve (both malloc'd), or both NULL when it
 * resolves nothing (an IP literal) or cannot parse the URL (libcurl then reports it). -1 when
 * out of memory. */
int cio_resolve_target(const char *url, char **host, char **port);

/* The CURLOPT_RESOLVE entry for host and port ("host:port:addr[,addr...]", appended to *list).
 * Returns CIO_RESOLVE_OK when *list is ready, CIO_RESOLVE_PENDING when the lookup is still
 * running (ask again later; it was started if needed), CIO_RESOLVE_FAILED with errbuf
 * (CURL_ERROR_SIZE bytes) set to a message ("Could not resolve host: x (...)"),
 * CIO_RESOLVE_NOMEM. Never waits for a lookup: it only takes the resolver's mutex, which
 * nobody holds while resolving. */
int cio_resolve_host(cio_resolver *r, const char *host, const char *port, struct curl_slist **list, char *errbuf);

#endif

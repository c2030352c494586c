/*
 * async.c - many HTTP exchanges at once on one libcurl multi handle, advanced only when the
 * host calls poll(). Nothing here runs on another thread and nothing calls back into Lua: a
 * poll returns the finished transfers as a list, and the Lua layer (customerio.async) resumes
 * the calls waiting for them. Retries, redirects and error objects stay in customerio.http.client,
 * exactly as for the blocking handle.
 *
 * Each transfer gets an easy handle from a small pool, set up exactly like http.c's (the
 * shared code is in http_common.c): TLS verification on, no redirects, gzip, http/https only,
 * no "Expect: 100-continue". Connections live in the multi handle's cache, so they are kept
 * alive across transfers whatever easy handle runs them.
 *
 * poll(0) never blocks, whatever DNS or the server do:
 * - libcurl never resolves a name itself: a transfer first waits (outside libcurl) for the
 *   handle's resolver (resolve.c: getaddrinfo on detached threads of ours, results cached),
 *   then gets the addresses through CURLOPT_RESOLVE. libcurl's threaded resolver would join
 *   its thread on our thread when a transfer with a stalled lookup times out.
 * - The timeout covers the whole call: a lookup still running at the deadline fails the call
 *   with "timeout" (the lookup is abandoned); libcurl gets what is left of it.
 * - A poll works for at most its budget: resolved transfers join the multi handle a slice at a
 *   time, libcurl is driven one ready socket at a time (curl_multi_socket_action), and finished
 *   transfers are reported until the budget is spent; the rest waits for the next poll. One
 *   step (a socket's work, a slice of starts, one report) is always done, so polls progress.
 */
/***
 * The async multi handle of the C core (used by customerio.async).
 * @module customerio.core
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <poll.h>
#include <time.h>

#include "compat.h"
#include "http_common.h"
#include "resolve.h"

#define ASYNC_MT "customerio.async"
#define ASYNC_DEFAULT_POOL 16
#define ASYNC_DEFAULT_KEEPALIVE 64
/* A pooled handle keeps its buffers unless they grew past this. */
#define ASYNC_KEEP_BUFFER (256 * 1024)
/* The work one poll does by default (ms), and how many transfers join libcurl at a time. */
#define ASYNC_DEFAULT_BUDGET 2
#define ASYNC_SLICE 2

/* Where a transfer is: waiting for its name, resolved and waiting to join libcurl, in libcurl. */
enum { ASYNC_RESOLVING, ASYNC_QUEUED, ASYNC_RUNNING };

typedef struct async_transfer {
  struct async_transfer *prev, *next; /* the active list (doubly linked) or the idle pool */
  CURL *easy;
  struct curl_slist *req_headers;
  char *host, *port;          /* the name to resolve (NULL: an IP literal) */
  struct curl_slist *resolve; /* CURLOPT_RESOLVE entry of the URL's host */
  int stage;                  /* ASYNC_RESOLVING, _QUEUED, _RUNNING */
  double deadline;            /* monotonic ms: the end of the whole call */
  cio_buffer req_body; /* a copy: the Lua string may be collected before the transfer ends */
  cio_body body;       /* libcurl's reader over req_body */
  cio_sink sink;
  lua_Integer id;
  int in_multi;
  int ready;             /* set up by cio_curl_setup with the options below (reused as is) */
  long connect_timeout;  /* the options the handle was set up with */
  char *ca_file;
  char errbuf[CURL_ERROR_SIZE];
} async_transfer;

typedef struct {
  CURLM *multi;
  cio_resolver *resolver;
  struct pollfd *fds; /* the sockets libcurl watches (CURLMOPT_SOCKETFUNCTION) */
  int n_fds, cap_fds;
  double timer_at;    /* when libcurl wants CURL_SOCKET_TIMEOUT (monotonic ms), < 0: never */
  int running;        /* libcurl's count of its transfers not yet finished (socket_action) */
  int n_multi;        /* transfers in the multi handle (in_multi), finished ones included */
  unsigned turn;      /* where async_drive starts among the sockets */
  async_transfer *active;  /* in call order: resolving, queued, or in the multi handle */
  async_transfer *tail;
  async_transfer *idle;    /* pool of set-up easy handles */
  async_transfer *staging; /* being prepared by add(); owned here in case it raises */
  int n_active, n_idle, max_idle;
  lua_Integer next_id;
  lua_Integer started, completed, connects;
  lua_Integer missed_wakeups; /* waits begun with a finished transfer not collected (see async_wait) */
} async_multi;

static async_multi *async_check(lua_State *L) {
  async_multi *m = (async_multi *)luaL_checkudata(L, 1, ASYNC_MT);
  if (m->multi == NULL) luaL_error(L, "async handle is closed");
  return m;
}

/* Monotonic milliseconds with a fraction (budgets are a few ms). */
static double async_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void async_transfer_free(async_transfer *t) {
  if (t->easy) curl_easy_cleanup(t->easy);
  free(t->ca_file);
  curl_slist_free_all(t->req_headers);
  curl_slist_free_all(t->resolve);
  free(t->host);
  free(t->port);
  cio_buffer_free(&t->req_body);
  cio_buffer_free(&t->sink.body);
  cio_buffer_free(&t->sink.head);
  free(t);
}

static void async_unlink(async_multi *m, async_transfer *t) {
  if (t->prev) t->prev->next = t->next;
  else m->active = t->next;
  if (t->next) t->next->prev = t->prev;
  else m->tail = t->prev;
  t->prev = t->next = NULL;
  m->n_active--;
}

/* At the end: transfers join libcurl in the order of the calls. */
static void async_link(async_multi *m, async_transfer *t) {
  t->next = NULL;
  t->prev = m->tail;
  if (m->tail) m->tail->next = t;
  else m->active = t;
  m->tail = t;
  m->n_active++;
}

/* Back to the pool (or freed when the pool is full). The transfer is in no list. */
static void async_recycle(async_multi *m, async_transfer *t) {
  if (t->in_multi) {
    curl_multi_remove_handle(m->multi, t->easy);
    t->in_multi = 0;
    m->n_multi--;
  }
  /* Nothing may point into the request's buffers once the transfer is over. */
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
  t->body.data = NULL;
  t->body.len = t->body.pos = 0;
  curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  curl_easy_setopt(t->easy, CURLOPT_RESOLVE, NULL);
  curl_slist_free_all(t->req_headers);
  t->req_headers = NULL;
  curl_slist_free_all(t->resolve);
  t->resolve = NULL;
  free(t->host);
  free(t->port);
  t->host = t->port = NULL;
  if (m->n_idle >= m->max_idle) {
    async_transfer_free(t);
    return;
  }
  if (t->req_body.cap > ASYNC_KEEP_BUFFER) cio_buffer_free(&t->req_body);
  if (t->sink.body.cap > ASYNC_KEEP_BUFFER) cio_buffer_free(&t->sink.body);
  if (t->sink.head.cap > ASYNC_KEEP_BUFFER) cio_buffer_free(&t->sink.head);
  t->prev = NULL;
  t->next = m->idle;
  m->idle = t;
  m->n_idle++;
}

static void async_release(async_multi *m) {
  async_transfer *t, *next;
  for (t = m->active; t != NULL; t = next) {
    next = t->next;
    if (t->in_multi) curl_multi_remove_handle(m->multi, t->easy);
    async_transfer_free(t);
  }
  for (t = m->idle; t != NULL; t = next) {
    next = t->next;
    async_transfer_free(t);
  }
  if (m->staging) async_transfer_free(m->staging);
  m->active = m->tail = m->idle = m->staging = NULL;
  m->n_active = m->n_idle = m->n_multi = 0;
  if (m->multi) curl_multi_cleanup(m->multi);
  m->multi = NULL;
  /* Lookups still running finish on their own threads; nothing waits for them. */
  cio_resolver_free(m->resolver);
  m->resolver = NULL;
  free(m->fds);
  m->fds = NULL;
  m->n_fds = m->cap_fds = 0;
}

/* CURLMOPT_SOCKETFUNCTION: keep the list of sockets to watch. */
static int async_on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  async_multi *m = (async_multi *)userp;
  int i;
  short events = 0;
  (void)easy;
  (void)socketp;
  for (i = 0; i < m->n_fds; i++)
    if (m->fds[i].fd == s) break;
  if (what == CURL_POLL_REMOVE) {
    if (i < m->n_fds) m->fds[i] = m->fds[--m->n_fds];
    return 0;
  }
  if (what & CURL_POLL_IN) events |= POLLIN;
  if (what & CURL_POLL_OUT) events |= POLLOUT;
  if (i == m->n_fds) {
    if (m->n_fds == m->cap_fds) {
      int cap = m->cap_fds ? m->cap_fds * 2 : 16;
      struct pollfd *grown = (struct pollfd *)realloc(m->fds, (size_t)cap * sizeof *grown);
      if (grown == NULL) return -1; /* libcurl fails the transfer */
      m->fds = grown;
      m->cap_fds = cap;
    }
    m->n_fds++;
    m->fds[i].fd = s;
  }
  m->fds[i].events = events;
  m->fds[i].revents = 0;
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: when to call curl_multi_socket_action(CURL_SOCKET_TIMEOUT). */
static int async_on_timer(CURLM *multi, long timeout_ms, void *userp) {
  async_multi *m = (async_multi *)userp;
  (void)multi;
  m->timer_at = timeout_ms < 0 ? -1 : async_now() + (double)timeout_ms;
  return 0;
}

/***
 * Create a multi handle: many HTTP exchanges at once, advanced by `poll`.
 * @function async_new
 * @tparam[opt] table opts `max_connections` (total, default 0 = unlimited),
 * `max_host_connections` (per host, default 0 = unlimited), `keepalive` (idle connections
 * kept open, default 64), `pool` (idle easy handles kept for reuse, default 16)
 * @return handle
 */
static int async_new(lua_State *L) {
  async_multi *m;
  lua_Integer max_conn = 0, max_host = 0, keepalive = ASYNC_DEFAULT_KEEPALIVE, pool = ASYNC_DEFAULT_POOL;
  CURLMcode mrc;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "max_connections");
    if (!lua_isnil(L, -1)) max_conn = luaL_checkinteger(L, -1);
    lua_getfield(L, 1, "max_host_connections");
    if (!lua_isnil(L, -1)) max_host = luaL_checkinteger(L, -1);
    lua_getfield(L, 1, "keepalive");
    if (!lua_isnil(L, -1)) keepalive = luaL_checkinteger(L, -1);
    lua_getfield(L, 1, "pool");
    if (!lua_isnil(L, -1)) pool = luaL_checkinteger(L, -1);
    lua_pop(L, 4);
    luaL_argcheck(L, max_conn >= 0 && max_conn <= 100000, 1, "max_connections must be between 0 and 100000");
    luaL_argcheck(L, max_host >= 0 && max_host <= 100000, 1, "max_host_connections must be between 0 and 100000");
    luaL_argcheck(L, keepalive >= 0 && keepalive <= 100000, 1, "keepalive must be between 0 and 100000");
    luaL_argcheck(L, pool >= 0 && pool <= 100000, 1, "pool must be between 0 and 100000");
  }
  m = (async_multi *)lua_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  m->max_idle = (int)pool;
  luaL_getmetatable(L, ASYNC_MT);
  lua_setmetatable(L, -2);
  m->timer_at = -1;
  m->multi = curl_multi_init();
  if (m->multi == NULL) return luaL_error(L, "curl_multi_init failed");
  m->resolver = cio_resolver_new();
  if (m->resolver == NULL) {
    async_release(m);
    return luaL_error(L, "out of memory");
  }
  /* A fixed cache size: libcurl's default (4 x the handles added) would close the idle
   * connections of a burst as soon as it is over. */
  if ((mrc = curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)keepalive)) != CURLM_OK ||
      (mrc = curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_conn)) != CURLM_OK ||
      (mrc = curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host)) != CURLM_OK ||
      (mrc = curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, async_on_socket)) != CURLM_OK ||
      (mrc = curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, (void *)m)) != CURLM_OK ||
      (mrc = curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, async_on_timer)) != CURLM_OK ||
      (mrc = curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, (void *)m)) != CURLM_OK) {
    async_release(m);
    return luaL_error(L, "curl_multi_setopt: %s", curl_multi_strerror(mrc));
  }
  return 1;
}

static int async_same(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

/* A transfer from the pool, or a new one; NULL when out of memory. */
static async_transfer *async_take(async_multi *m) {
  async_transfer *t = m->idle;
  if (t != NULL) {
    m->idle = t->next;
    m->n_idle--;
    t->next = NULL;
    return t;
  }
  t = (async_transfer *)calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->easy = curl_easy_init();
  if (t->easy == NULL) {
    free(t);
    return NULL;
  }
  return t;
}

/***
 * Start one HTTP exchange; it advances in later calls to `poll`.
 * @function handle:add
 * @tparam string method GET, POST, PUT, DELETE, PATCH or HEAD
 * @tparam string url absolute http(s) URL
 * @tparam[opt] table headers name -> value
 * @tparam[opt] string body request body (copied)
 * @tparam[opt] number timeout_ms whole-exchange timeout (default 10000)
 * @tparam[opt] number connect_timeout_ms default 10000
 * @tparam[opt] string ca_file PEM bundle of extra trusted CAs
 * @tparam[opt] number max_response bytes (default 64 MiB)
 * @treturn integer the transfer's id, as `poll` reports it
 * @return nil, kind, message when libcurl refuses the transfer
 */
static int async_add(lua_State *L) {
  async_multi *m = async_check(L);
  size_t mlen, ulen, blen = 0;
  const char *method = luaL_checklstring(L, 2, &mlen);
  const char *url = luaL_checklstring(L, 3, &ulen);
  const char *body = luaL_optlstring(L, 5, NULL, &blen);
  lua_Number timeout = luaL_optnumber(L, 6, 10000);
  lua_Number connect_timeout = luaL_optnumber(L, 7, 10000);
  const char *ca_file = luaL_optstring(L, 8, NULL);
  lua_Integer max_response = luaL_optinteger(L, 9, CIO_DEFAULT_MAX_RESPONSE);
  const char *failed = "";
  async_transfer *t;
  CURLcode rc;

  const char *bad_url = cio_url_problem(url, ulen);
  if (bad_url != NULL) return luaL_argerror(L, 3, bad_url);
  luaL_argcheck(L, timeout > 0, 6, "timeout must be positive");
  luaL_argcheck(L, connect_timeout > 0, 7, "connect_timeout must be positive");
  luaL_argcheck(L, max_response > 0, 9, "max_response must be positive");
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);

  /* A transfer left by an add() that raised goes back to the pool first. */
  if (m->staging) {
    t = m->staging;
    m->staging = NULL;
    async_recycle(m, t);
  }
  t = async_take(m);
  if (t == NULL) return luaL_error(L, "out of memory");
  m->staging = t; /* from here on, a raise leaves it owned by m */
  t->id = ++m->next_id;
  t->errbuf[0] = '\0';
  t->sink.max_response = (size_t)max_response;
  cio_sink_reset(&t->sink);
  /* A pooled handle set up with the same options is used as is (the per-request options are
   * all set below); otherwise it starts again from libcurl's defaults. Either way it keeps
   * the connections, DNS and TLS session caches. */
  if (!t->ready || t->connect_timeout != cio_ms(connect_timeout) || !async_same(t->ca_file, ca_file)) {
    curl_easy_reset(t->easy); /* also clears what a setup that failed half-way left */
    t->ready = 0;
    free(t->ca_file);
    t->ca_file = NULL;
    if (ca_file != NULL && (t->ca_file = strdup(ca_file)) == NULL) return luaL_error(L, "out of memory");
    t->connect_timeout = cio_ms(connect_timeout);
    rc = cio_curl_setup(t->easy, t->errbuf, t->connect_timeout, ca_file, &failed);
    if (rc == CURLE_OK) rc = cio_sink_attach(t->easy, &t->sink, &failed);
    if (rc != CURLE_OK) return luaL_error(L, "curl_easy_setopt(%s): %s", failed, curl_easy_strerror(rc));
    t->ready = 1;
  }
  cio_build_headers(L, 4, &t->req_headers);
  t->req_body.len = 0;
  if (body != NULL && cio_buffer_append(&t->req_body, body, blen) != 0) return luaL_error(L, "out of memory");
  cio_set_method(L, t->easy, 2, method, mlen, body != NULL ? t->req_body.data : NULL, blen, &t->body);
  if ((rc = curl_easy_setopt(t->easy, CURLOPT_URL, url)) != CURLE_OK ||
      (rc = curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->req_headers)) != CURLE_OK ||
      (rc = curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (void *)t)) != CURLE_OK) {
    m->staging = NULL;
    async_recycle(m, t);
    lua_pushnil(L);
    lua_pushstring(L, cio_curl_error_kind(rc));
    lua_pushstring(L, curl_easy_strerror(rc));
    return 3;
  }
  if (cio_resolve_target(url, &t->host, &t->port) != 0) return luaL_error(L, "out of memory");
  m->staging = NULL;
  /* It joins libcurl in a later poll, once its host is resolved (see the top of the file). */
  t->deadline = async_now() + (double)cio_ms(timeout);
  t->stage = t->host != NULL ? ASYNC_RESOLVING : ASYNC_QUEUED;
  async_link(m, t);
  m->started++;
  lua_pushinteger(L, t->id);
  return 1;
}

/* Report a transfer that failed before joining libcurl (errbuf holds the message) and
 * recycle it; returns the new count of the list on top of the stack. */
static int async_fail_early(lua_State *L, async_multi *m, async_transfer *t, CURLcode rc, int n) {
  lua_createtable(L, 4, 0);
  lua_pushinteger(L, t->id);
  lua_rawseti(L, -2, 1);
  /* Nothing of the request was written: it failed resolving its host or waiting to connect. */
  lua_pushstring(L, cio_curl_error_kind(rc));
  lua_pushstring(L, t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
  lua_pushstring(L, (rc == CURLE_COULDNT_RESOLVE_HOST || t->stage == ASYNC_RESOLVING) ? "resolve" : "connect");
  lua_rawseti(L, -4, 5);
  lua_rawseti(L, -3, 4);
  lua_rawseti(L, -2, 3);
  lua_rawseti(L, -2, ++n);
  m->completed++;
  async_unlink(m, t);
  async_recycle(m, t);
  return n;
}

/* The transfers not yet in libcurl: those whose name is resolved are queued, those whose
 * lookup failed or whose deadline passed are reported. Never waits for a lookup. */
static int async_resolve_step(lua_State *L, async_multi *m, int n, double now) {
  async_transfer *t, *next;
  for (t = m->active; t != NULL; t = next) {
    next = t->next;
    if (t->stage == ASYNC_RUNNING) continue;
    if (t->stage == ASYNC_RESOLVING) {
      int rc = cio_resolve_host(m->resolver, t->host, t->port, &t->resolve, t->errbuf);
      if (rc == CIO_RESOLVE_NOMEM) luaL_error(L, "out of memory");
      if (rc == CIO_RESOLVE_FAILED) {
        n = async_fail_early(L, m, t, CURLE_COULDNT_RESOLVE_HOST, n);
        continue;
      }
      if (rc == CIO_RESOLVE_OK) t->stage = ASYNC_QUEUED;
    }
    if (now >= t->deadline) {
      snprintf(t->errbuf, CURL_ERROR_SIZE, "%s timed out: the call's timeout passed",
               t->stage == ASYNC_RESOLVING ? "Resolving" : "Waiting to start");
      n = async_fail_early(L, m, t, CURLE_OPERATION_TIMEDOUT, n);
    }
  }
  return n;
}

/* Let up to ASYNC_SLICE queued transfers join libcurl; returns how many did (failures to
 * join are reported). */
static int async_admit(lua_State *L, async_multi *m, int *n, double now) {
  async_transfer *t, *next;
  int admitted = 0;
  for (t = m->active; t != NULL && admitted < ASYNC_SLICE; t = next) {
    CURLMcode mrc;
    CURLcode rc;
    next = t->next;
    if (t->stage != ASYNC_QUEUED) continue;
    /* libcurl gets what is left of the call's timeout, and the name's addresses. */
    if ((rc = curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, cio_ms(t->deadline - now))) != CURLE_OK ||
        (rc = curl_easy_setopt(t->easy, CURLOPT_RESOLVE, t->resolve)) != CURLE_OK) {
      snprintf(t->errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
      *n = async_fail_early(L, m, t, rc, *n);
      continue;
    }
    mrc = curl_multi_add_handle(m->multi, t->easy);
    if (mrc != CURLM_OK) {
      snprintf(t->errbuf, CURL_ERROR_SIZE, "%s", curl_multi_strerror(mrc));
      *n = async_fail_early(L, m, t, CURLE_BAD_FUNCTION_ARGUMENT, *n);
      continue;
    }
    t->in_multi = 1;
    m->n_multi++;
    t->stage = ASYNC_RUNNING;
    admitted++;
  }
  return admitted;
}

/* Append the finished transfers to the table on top of the stack, until the monotonic time
 * `until` (at least one); returns the new count. The others stay in libcurl's queue. */
static int async_collect(lua_State *L, async_multi *m, int n, double until) {
  CURLMsg *msg;
  int left, first = 1;
  while ((first || async_now() < until) && (msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    first = 0;
    CURL *easy;
    CURLcode result;
    async_transfer *t = NULL;
    long status = 0, connects = 0;
    if (msg->msg != CURLMSG_DONE) continue;
    easy = msg->easy_handle;
    result = msg->data.result; /* msg dies with curl_multi_remove_handle */
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t) != CURLE_OK || t == NULL) continue;
    curl_multi_remove_handle(m->multi, easy);
    t->in_multi = 0;
    m->n_multi--;
    if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) m->connects += connects;
    m->completed++;
    lua_createtable(L, 4, 0);
    lua_pushinteger(L, t->id);
    lua_rawseti(L, -2, 1);
    if (result == CURLE_OK) {
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      lua_pushinteger(L, (lua_Integer)status);
      lua_rawseti(L, -2, 2);
      cio_push_headers(L, &t->sink.head);
      lua_rawseti(L, -2, 3);
      lua_pushlstring(L, t->sink.body.data ? t->sink.body.data : "", t->sink.body.len);
      lua_rawseti(L, -2, 4);
    } else {
      cio_push_failure(L, easy, result, &t->sink, t->errbuf);
      lua_rawseti(L, -4, 5);
      lua_rawseti(L, -3, 4);
      lua_rawseti(L, -2, 3);
    }
    lua_rawseti(L, -2, ++n);
    async_unlink(m, t);
    async_recycle(m, t);
  }
  return n;
}

/* One curl_multi_socket_action; raises on failure. After a timeout action the next timer is
 * read back (libcurl calls the timer function only when its value changes). */
static void async_action(lua_State *L, async_multi *m, curl_socket_t s, int mask) {
  CURLMcode mrc = curl_multi_socket_action(m->multi, s, mask, &m->running);
  if (mrc != CURLM_OK) luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mrc));
  if (s == CURL_SOCKET_TIMEOUT) {
    long next = -1;
    if (curl_multi_timeout(m->multi, &next) == CURLM_OK)
      m->timer_at = next < 0 ? -1 : async_now() + (double)next;
  }
}

/* Run libcurl's due timer, then the sockets that are ready, one at a time, until the monotonic
 * time `until` (at least one socket). Sockets are visited from a rotating start, so that a
 * budget spent early does not starve the same ones every poll. */
static void async_drive(lua_State *L, async_multi *m, double until) {
  struct pollfd *snap;
  int i, nfds, nready, first;
  if (m->timer_at >= 0 && m->timer_at <= async_now()) {
    m->timer_at = -1;
    async_action(L, m, CURL_SOCKET_TIMEOUT, 0);
  }
  nfds = m->n_fds;
  if (nfds == 0) return;
  /* A copy: socket_action changes m->fds through async_on_socket. */
  snap = (struct pollfd *)malloc((size_t)nfds * sizeof *snap);
  if (snap == NULL) luaL_error(L, "out of memory");
  memcpy(snap, m->fds, (size_t)nfds * sizeof *snap);
  nready = poll(snap, (nfds_t)nfds, 0);
  first = (int)(m->turn++ % (unsigned)nfds);
  for (i = 0; i < nfds && nready > 0; i++) {
    struct pollfd *p = &snap[(first + i) % nfds];
    int mask = 0;
    CURLMcode mrc;
    if (p->revents == 0) continue;
    nready--;
    if (p->revents & (POLLIN | POLLHUP)) mask |= CURL_CSELECT_IN;
    if (p->revents & POLLOUT) mask |= CURL_CSELECT_OUT;
    if (p->revents & (POLLERR | POLLNVAL)) mask |= CURL_CSELECT_ERR;
    mrc = curl_multi_socket_action(m->multi, p->fd, mask, &m->running);
    if (mrc != CURLM_OK) {
      free(snap);
      luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mrc));
    }
    if (async_now() >= until) break;
  }
  free(snap);
}

/* Wait up to ms for a socket, libcurl's timer, or (every few ms) a lookup to finish. Each
 * wake-up has its signal: a socket in m->fds, libcurl's timer, the 5 ms turns of a lookup, a
 * non-running transfer's deadline; a finished transfer not yet collected is checked here. So
 * there is no cap on the sleep: a wake-up missed would be a bug, counted in missed_wakeups. */
static void async_wait(async_multi *m, double ms) {
  async_transfer *t;
  double now = async_now();
  long next = -1;
  /* libcurl's own view of its next timer, in case a change was not signalled. */
  if (curl_multi_timeout(m->multi, &next) == CURLM_OK && next >= 0 && (m->timer_at < 0 || now + (double)next < m->timer_at))
    m->timer_at = now + (double)next;
  if (m->timer_at >= 0 && m->timer_at - now < ms) ms = m->timer_at - now;
  for (t = m->active; t != NULL; t = t->next) {
    if (t->stage == ASYNC_RESOLVING && ms > 5) ms = 5; /* lookups have no socket to wait on */
    if (t->stage == ASYNC_QUEUED) ms = 0;              /* left by a spent budget: start it now */
    if (t->stage != ASYNC_RUNNING && t->deadline - now < ms) ms = t->deadline - now;
  }
  if (ms < 0) ms = 0;
  /* A transfer that finished in libcurl (its socket_action lowered m->running) and was not
   * collected is a wake-up already due: its message waits in libcurl's queue, which no socket
   * or timer signals. async_poll collects before it waits, so this is never true; if it ever
   * is, the wait is skipped and counted (the spec async_wakeup_spec.lua checks the count). */
  if (ms > 0 && m->n_multi > m->running) {
    m->missed_wakeups++;
    ms = 0;
  }
  poll(m->fds, (nfds_t)m->n_fds, (int)(ms + 0.999));
}

/***
 * Advance the transfers and report those that finished, doing at most `budget_ms` of work:
 * names resolved by the handle's resolver threads are handed to libcurl, resolved transfers
 * join libcurl a few at a time, libcurl runs one ready socket at a time, and finished
 * transfers are reported, until the budget is spent (one step of each kind always runs, so
 * every poll makes progress); the rest carries over to the next poll. Never blocks when
 * `timeout_ms` is 0, whatever DNS or the server do; otherwise waits up to `timeout_ms` for
 * activity when nothing has finished yet.
 * @function handle:poll
 * @tparam[opt] number timeout_ms default 0
 * @tparam[opt] number budget_ms work per poll, default 2
 * @treturn table|nil finished transfers, each `{id, status, headers, body}` or
 * `{id, nil, kind, message, stage}` (kind: "timeout", "network", "tls", "request", "too_large";
 * stage: see cio_curl_failure_stage);
 * nil when none finished
 * @treturn integer transfers not yet reported
 */
static int async_poll(lua_State *L) {
  async_multi *m = async_check(L);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  lua_Number budget = luaL_optnumber(L, 3, ASYNC_DEFAULT_BUDGET);
  double until, end;
  int n = 0, admitted;
  luaL_argcheck(L, timeout >= 0, 2, "timeout must not be negative");
  luaL_argcheck(L, budget > 0, 3, "budget must be positive");
  if (timeout > 86400000) timeout = 86400000;
  if (budget > 86400000) budget = 86400000;
  until = async_now() + budget;
  end = async_now() + timeout;
  lua_newtable(L);
  for (;;) {
    n = async_collect(L, m, n, until); /* what the previous poll left */
    n = async_resolve_step(L, m, n, async_now());
    do {
      admitted = async_admit(L, m, &n, async_now());
      async_drive(L, m, until);
      /* Even with the budget spent (one report, at least): a transfer this drive finished is
       * known only by its message in libcurl's queue, which no socket or timer signals, so
       * async_wait below would sleep through it. */
      n = async_collect(L, m, n, until);
    } while (async_now() < until &&
             (admitted == ASYNC_SLICE || (m->timer_at >= 0 && m->timer_at <= async_now())));
    if (n > 0 || m->n_active == 0 || async_now() >= end) break;
    async_wait(m, end - async_now());
    until = async_now() + budget;
  }
  if (n == 0) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  lua_pushinteger(L, (lua_Integer)m->n_active);
  return 2;
}

/***
 * Abandon a transfer (it is never reported).
 * @function handle:remove
 * @tparam integer id
 * @treturn boolean whether it was running
 */
static int async_remove(lua_State *L) {
  async_multi *m = async_check(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  async_transfer *t;
  for (t = m->active; t != NULL; t = t->next) {
    if (t->id == id) {
      async_unlink(m, t);
      async_recycle(m, t);
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

/***
 * Counters of the handle.
 * @function handle:stats
 * @treturn table `{in_flight, idle_handles, started, completed, connects, missed_wakeups}`
 * (`connects`: new connections opened by finished transfers; fewer than `completed` means
 * keep-alive worked; `missed_wakeups`: blocking waits begun while a finished transfer was not
 * collected, skipped and counted: always 0 unless the poll loop has a bug)
 */
static int async_stats(lua_State *L) {
  async_multi *m = async_check(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)m->n_active);
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, (lua_Integer)m->n_idle);
  lua_setfield(L, -2, "idle_handles");
  lua_pushinteger(L, m->started);
  lua_setfield(L, -2, "started");
  lua_pushinteger(L, m->completed);
  lua_setfield(L, -2, "completed");
  lua_pushinteger(L, m->connects);
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, m->missed_wakeups);
  lua_setfield(L, -2, "missed_wakeups");
  return 1;
}

/***
 * Transfers started and not yet reported.
 * @function handle:pending
 * @treturn integer
 */
static int async_pending(lua_State *L) {
  async_multi *m = async_check(L);
  lua_pushinteger(L, (lua_Integer)m->n_active);
  return 1;
}

/***
 * Abandon every transfer and close the connections (also done by garbage collection).
 * @function handle:close
 */
static int async_close(lua_State *L) {
  async_multi *m = (async_multi *)luaL_checkudata(L, 1, ASYNC_MT);
  async_release(m);
  return 0;
}

static int async_tostring(lua_State *L) {
  async_multi *m = (async_multi *)luaL_checkudata(L, 1, ASYNC_MT);
  if (m->multi == NULL) lua_pushliteral(L, "customerio.async (closed)");
  else lua_pushfstring(L, "customerio.async (%d in flight)", m->n_active);
  return 1;
}

static const luaL_Reg async_methods[] = {
  {"add", async_add},
  {"poll", async_poll},
  {"remove", async_remove},
  {"pending", async_pending},
  {"stats", async_stats},
  {"close", async_close},
  {NULL, NULL},
};

static const luaL_Reg async_metamethods[] = {
  {"__gc", async_close},
#if LUA_VERSION_NUM >= 504
  {"__close", async_close},
#endif
  {"__tostring", async_tostring},
  {NULL, NULL},
};

static const luaL_Reg async_funcs[] = {
  {"async_new", async_new},
  {NULL, NULL},
};

int async_open(lua_State *L) {
  if (luaL_newmetatable(L, ASYNC_MT)) {
    luaL_setfuncs(L, async_metamethods, 0);
    luaL_newlib(L, async_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, async_funcs, 0);
  return 0;
}

/*
 * queue.c - the Lua binding of the background delivery queue behind customerio.Queue.
 *
 * The worker (queue_worker.c) never touches the Lua state; this file turns Lua options into
 * its configuration, hands encoded operations over, and turns its reports and counters into
 * Lua values on the Lua thread. Every option is required: the defaults are written once, in
 * Lua (customerio.queue.common for the sizes, customerio.http.retry for the retry policy).
 *
 * Shutdown: close() (and __gc, __close, and the worker's atexit hook for os.exit without
 * closing the state) sends everything still held, waits up to a timeout, then gives up on what
 * is left, reporting it, and joins the thread. __gc hands what is left to the Lua reporter.
 */

/***
 * The background delivery queue (worker thread + libcurl multi).
 * @module customerio.core
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "http_common.h"
#include "queue_worker.h"
#include "spool.h"

#define QUEUE_MT "customerio.queue"
#define SPOOL_MT "customerio.spool"

typedef struct {
  cio_queue *q;
} queue_ud;

static void queue_setcount(lua_State *L, const char *name, uint64_t v);

static cio_queue *queue_check(lua_State *L) {
  queue_ud *u = (queue_ud *)luaL_checkudata(L, 1, QUEUE_MT);
  if (u->q == NULL) luaL_error(L, "queue is released");
  return u->q;
}

/* A required number option of table t, in [min, 9e15]. */
static lua_Number queue_opt_num(lua_State *L, int t, const char *name, lua_Number min) {
  lua_Number v;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) luaL_error(L, "queue option %s is required", name);
  v = luaL_checknumber(L, -1);
  if (!(v >= min && v <= 9.0e15)) luaL_error(L, "queue option %s out of range", name);
  lua_pop(L, 1);
  return v;
}

static char *queue_opt_str(lua_State *L, int t, const char *name, int required) {
  char *s = NULL;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    size_t len;
    const char *v = luaL_checklstring(L, -1, &len);
    if (strlen(v) != len) luaL_error(L, "queue option %s contains NUL", name);
    s = (char *)malloc(len + 1);
    if (s == NULL) luaL_error(L, "out of memory");
    memcpy(s, v, len + 1);
  } else if (required) {
    luaL_error(L, "queue option %s is required", name);
  }
  lua_pop(L, 1);
  return s;
}

/* The retry policy, resolved by customerio.http.retry.policy: every field is required. */
static void queue_read_retry(lua_State *L, cio_retry_policy *p) {
  int t, s, i, n;
  lua_getfield(L, 1, "retry");
  luaL_argcheck(L, lua_istable(L, -1), 1, "queue option retry (a customerio.http.retry policy) is required");
  t = lua_gettop(L);
  p->max_retries = (int)queue_opt_num(L, t, "max_retries", 0);
  if (p->max_retries > 1000000) luaL_error(L, "queue option max_retries out of range");
  p->min_timeout = queue_opt_num(L, t, "min_timeout", 0);
  p->max_timeout = queue_opt_num(L, t, "max_timeout", 0);
  p->retry_after_max = queue_opt_num(L, t, "retry_after_max", 0);
  p->max_total_backoff = queue_opt_num(L, t, "max_total_backoff", 0);
  lua_getfield(L, t, "respect_retry_after");
  luaL_argcheck(L, lua_isboolean(L, -1), 1, "queue option retry.respect_retry_after is required");
  p->respect_retry_after = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, t, "retry_statuses");
  luaL_argcheck(L, lua_istable(L, -1), 1, "queue option retry.retry_statuses is required");
  s = lua_gettop(L);
  n = (int)lua_rawlen(L, s);
  memset(p->retry_status, 0, sizeof p->retry_status);
  for (i = 1; i <= n; i++) {
    lua_Number code;
    lua_rawgeti(L, s, i);
    code = luaL_checknumber(L, -1);
    if (code > 0 && code < 600) p->retry_status[(int)code] = 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "retry_kinds");
  luaL_argcheck(L, lua_istable(L, -1), 1, "queue option retry.retry_kinds is required");
  s = lua_gettop(L);
  n = (int)lua_rawlen(L, s);
  p->retry_kinds = 0;
  for (i = 1; i <= n; i++) {
    unsigned bit;
    lua_rawgeti(L, s, i);
    bit = cio_queue_kind_bit(luaL_checkstring(L, -1));
    if (bit == 0) luaL_error(L, "queue option retry.retry_kinds: unknown kind %s", lua_tostring(L, -1));
    p->retry_kinds |= bit;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* Read the options into the queue's config (may raise: the queue is owned by the userdata
 * already, __gc frees it). */
static void queue_read_options(lua_State *L, cio_queue_config *c) {
  c->url = queue_opt_str(L, 1, "url", 1);
  c->ca_file = queue_opt_str(L, 1, "ca_file", 0);
  {
    size_t len = strlen(c->url);
    const char *bad = cio_url_problem(c->url, len);
    if (bad != NULL) luaL_error(L, "queue option url: %s", bad);
  }
  c->timeout_ms = cio_ms(queue_opt_num(L, 1, "timeout", 1));
  c->connect_timeout_ms = cio_ms(queue_opt_num(L, 1, "connect_timeout", 1));
  c->max_events = (size_t)queue_opt_num(L, 1, "max_events", 1);
  c->max_bytes = (size_t)queue_opt_num(L, 1, "max_bytes", 1);
  c->op_bytes = (size_t)queue_opt_num(L, 1, "op_bytes", 1);
  c->batch_bytes = (size_t)queue_opt_num(L, 1, "batch_bytes", 64);
  c->flush_interval_ms = (int64_t)queue_opt_num(L, 1, "flush_interval", 0);
  c->close_timeout_ms = (int64_t)queue_opt_num(L, 1, "close_timeout", 0);
  c->max_in_flight = (int)queue_opt_num(L, 1, "max_in_flight", 1);
  c->order = (int)queue_opt_num(L, 1, "order", CIO_ORDER_NONE);
  if (c->order > CIO_ORDER_STRICT) luaL_error(L, "queue option order out of range");
  if (c->max_in_flight > CIO_QUEUE_MAX_SLOTS)
    luaL_error(L, "queue option max_in_flight must be at most %d", CIO_QUEUE_MAX_SLOTS);
  if (c->op_bytes + CIO_QUEUE_BATCH_OVERHEAD > c->batch_bytes)
    luaL_error(L, "queue option batch_bytes must leave room for one operation of op_bytes bytes");
  queue_read_retry(L, &c->retry);
  /* The spool: optional; spool_sync and spool_segment_bytes are required with it. */
  c->spool_dir = queue_opt_str(L, 1, "spool", 0);
  if (c->spool_dir != NULL) {
    c->spool_sync_ms = (int64_t)queue_opt_num(L, 1, "spool_sync", -1);
    c->spool_segment_bytes = (uint64_t)queue_opt_num(L, 1, "spool_segment_bytes", 64);
  }
  /* Request headers: name -> value, checked as for every request of the core. */
  lua_getfield(L, 1, "headers");
  luaL_argcheck(L, lua_istable(L, -1), 1, "queue option headers is required");
  cio_build_headers(L, lua_gettop(L), &c->headers);
  lua_pop(L, 1);
}

/* Keep the Lua reporter (called from __gc with what is left to report) as the user value. */
static void queue_set_reporter(lua_State *L, int ud, int fn) {
#if LUA_VERSION_NUM == 501
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, fn);
  lua_rawseti(L, -2, 1);
  lua_setfenv(L, ud);
#elif LUA_VERSION_NUM >= 504
  lua_pushvalue(L, fn);
  lua_setiuservalue(L, ud, 1);
#else
  lua_pushvalue(L, fn);
  lua_setuservalue(L, ud);
#endif
}

static void queue_push_reporter(lua_State *L, int ud) {
#if LUA_VERSION_NUM == 501
  lua_getfenv(L, ud);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
#elif LUA_VERSION_NUM >= 504
  lua_getiuservalue(L, ud, 1);
#else
  lua_getuservalue(L, ud);
#endif
}

/***
 * Create a queue and start its worker thread. Every option but `ca_file` and `reporter` is
 * required (customerio.queue passes its defaults).
 * @function queue_new
 * @tparam table opts `url` (the /api/v2/batch URL), `headers` (name -> value), `timeout`,
 * `connect_timeout` (ms), `ca_file`, `max_events`, `max_bytes`, `batch_bytes`, `op_bytes`,
 * `flush_interval` (ms), `max_in_flight`, `close_timeout` (ms, for __gc and exit), `retry`
 * (a customerio.http.retry policy), `reporter` (function(reports) called by __gc); optional
 * `spool` (a directory), with `spool_sync` (ms; 0 every push, -1 never) and `spool_segment_bytes`
 * @return queue
 */
static int queue_new(lua_State *L) {
  queue_ud *u;
  const char *failed;

  luaL_checktype(L, 1, LUA_TTABLE);
#if LUA_VERSION_NUM >= 504
  u = (queue_ud *)lua_newuserdatauv(L, sizeof *u, 1);
#else
  u = (queue_ud *)lua_newuserdata(L, sizeof *u);
#endif
  u->q = NULL;
  luaL_getmetatable(L, QUEUE_MT);
  lua_setmetatable(L, -2);

  u->q = cio_queue_alloc(); /* from here on __gc frees it */
  if (u->q == NULL) return luaL_error(L, "out of memory (or pthread objects) for the queue");
  queue_read_options(L, cio_queue_config_of(u->q));
  lua_getfield(L, 1, "reporter");
  if (!lua_isnil(L, -1)) luaL_checktype(L, -1, LUA_TFUNCTION);
  queue_set_reporter(L, 2, lua_gettop(L)); /* the userdata is at 2, opts at 1 */
  lua_pop(L, 1);

  failed = cio_queue_start(u->q);
  if (failed != NULL) return luaL_error(L, "%s", failed);
  return 1;
}

/***
 * Hand one encoded operation to the worker.
 * @function queue:push
 * @tparam string json the operation, JSON-encoded
 * @tparam[opt] string key its ordering key (the person or object it names; see the order option)
 * @return true [, n] (n: reports waiting for poll) | nil, reason ("full", "too_large", "closed",
 * "forked", "spool_full", or "spool" and a message: the spool could not write it)
 */
static int queue_push(lua_State *L) {
  cio_queue *q = queue_check(L);
  size_t len, key_len = 0, reports = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  const char *key = luaL_optlstring(L, 3, NULL, &key_len);
  luaL_argcheck(L, len > 0, 2, "empty operation");
  switch (cio_queue_push(q, data, len, key, key == NULL ? 0 : key_len, &reports)) {
    case CIO_PUSH_OK: break;
    case CIO_PUSH_FORKED:
      lua_pushnil(L);
      lua_pushliteral(L, "forked");
      return 2;
    case CIO_PUSH_NOMEM: return luaL_error(L, "out of memory");
    case CIO_PUSH_TOO_LARGE:
      lua_pushnil(L);
      lua_pushliteral(L, "too_large");
      return 2;
    case CIO_PUSH_CLOSED:
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    case CIO_PUSH_FULL:
      lua_pushnil(L);
      lua_pushliteral(L, "full");
      return 2;
    case CIO_PUSH_SPOOL_FULL:
      lua_pushnil(L);
      lua_pushliteral(L, "spool_full");
      return 2;
    case CIO_PUSH_SPOOL:
      lua_pushnil(L);
      lua_pushliteral(L, "spool");
      lua_pushstring(L, cio_queue_spool_error(q));
      return 3;
  }
  lua_pushboolean(L, 1);
  if (reports == 0) return 1;
  lua_pushinteger(L, (lua_Integer)reports);
  return 2;
}

/* Push the waiting reports as a list (or nil when there are none). */
static int queue_push_reports(lua_State *L, cio_queue *q) {
  cio_queue_report *r = cio_queue_take_reports(q), *next;
  int i = 0;
  if (r == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_newtable(L);
  for (; r != NULL; r = next) {
    size_t k;
    next = r->next;
    lua_createtable(L, 0, 7);
    lua_pushstring(L, r->kind);
    lua_setfield(L, -2, "kind");
    queue_setcount(L, "batch", r->batch);
    if (r->status > 0) {
      lua_pushinteger(L, (lua_Integer)r->status);
      lua_setfield(L, -2, "status");
    }
    lua_pushinteger(L, (lua_Integer)r->attempts);
    lua_setfield(L, -2, "attempts");
    if (r->message) {
      lua_pushstring(L, r->message);
      lua_setfield(L, -2, "message");
    }
    if (r->body) {
      lua_pushlstring(L, r->body, r->body_len);
      lua_setfield(L, -2, "body");
    }
    if (r->detail) {
      lua_pushstring(L, r->detail);
      lua_setfield(L, -2, "detail");
    }
    lua_createtable(L, (int)r->n, 0);
    for (k = 0; k < r->n && r->ops != NULL; k++) {
      lua_pushlstring(L, r->ops + r->offs[k], r->offs[k + 1] - 1 - r->offs[k]);
      lua_rawseti(L, -2, (int)k + 1);
    }
    lua_setfield(L, -2, "ops");
    lua_rawseti(L, -2, ++i);
    cio_queue_report_free(r);
  }
  return 1;
}

/***
 * Take the reports of failed operations (to give to on_error on this thread).
 * @function queue:poll
 * @treturn table|nil list of `{kind, status, message, body, detail, attempts, ops = {json...}}`
 */
static int queue_poll(lua_State *L) {
  return queue_push_reports(L, queue_check(L));
}

/***
 * Send every held operation now and wait until each of them is accepted or failed.
 * @function queue:flush
 * @tparam number timeout_ms
 * @treturn boolean true when every operation held at the call was accepted
 * @treturn table `sent`, `failed`, `pending`: what became of the operations held at the call
 */
static int queue_flush(lua_State *L) {
  cio_queue *q = queue_check(L);
  cio_flush_result r;
  lua_Number timeout = luaL_checknumber(L, 2);
  int ok;
  luaL_argcheck(L, timeout >= 0, 2, "timeout must not be negative");
  if (!(timeout <= 9.0e15)) timeout = 9.0e15; /* a conversion of a larger double is undefined */
  ok = cio_queue_flush(q, (int64_t)timeout, &r);
  lua_pushboolean(L, ok);
  lua_createtable(L, 0, 3);
  queue_setcount(L, "sent", r.sent);
  queue_setcount(L, "failed", r.failed);
  queue_setcount(L, "pending", r.pending);
  return 2;
}

/***
 * Whether this process is a fork() child of the one that made the queue (which then refuses
 * every operation: its worker thread lives in the parent only).
 * @function queue:forked
 * @treturn boolean
 */
static int queue_forked(lua_State *L) {
  lua_pushboolean(L, cio_queue_forked(queue_check(L)));
  return 1;
}

/***
 * Flush (waiting up to timeout_ms), give up on what is left (it is reported), stop the worker.
 * @function queue:close
 * @tparam[opt] number timeout_ms default: the close_timeout option
 * @treturn boolean true when everything was delivered or reported before the timeout
 */
static int queue_close(lua_State *L) {
  cio_queue *q = queue_check(L);
  lua_Number timeout = luaL_optnumber(L, 2, (lua_Number)cio_queue_config_of(q)->close_timeout_ms);
  luaL_argcheck(L, timeout >= 0, 2, "timeout must not be negative");
  if (!(timeout <= 9.0e15)) timeout = 9.0e15;
  lua_pushboolean(L, cio_queue_shutdown(q, (int64_t)timeout));
  return 1;
}

static void queue_setcount(lua_State *L, const char *name, uint64_t v) {
#if CIO_HAS_INTEGERS
  lua_pushinteger(L, (lua_Integer)v);
#else
  lua_pushnumber(L, (lua_Number)v);
#endif
  lua_setfield(L, -2, name);
}

/***
 * Counters.
 * @function queue:stats
 * @treturn table `enqueued, sent, failed, dropped, rejected, retried, queued, in_flight, bytes,
 * requests, batches, reports, closed`
 */
static int queue_stats(lua_State *L) {
  cio_queue_stats s;
  cio_queue_get_stats(queue_check(L), &s);
  lua_createtable(L, 0, 14);
  queue_setcount(L, "enqueued", s.enqueued);
  queue_setcount(L, "sent", s.sent);
  queue_setcount(L, "failed", s.failed);
  queue_setcount(L, "dropped", s.dropped);
  queue_setcount(L, "rejected", s.rejected);
  queue_setcount(L, "retried", s.retried);
  queue_setcount(L, "queued", s.queued);
  queue_setcount(L, "in_flight", s.in_flight);
  queue_setcount(L, "bytes", s.bytes);
  queue_setcount(L, "requests", s.requests);
  queue_setcount(L, "batches", s.batches);
  queue_setcount(L, "reports", s.reports);
  queue_setcount(L, "replayed", s.replayed);
  queue_setcount(L, "spool_bytes", s.spool_bytes);
  queue_setcount(L, "spool_errors", s.spool_errors);
  lua_pushboolean(L, s.closed);
  lua_setfield(L, -2, "closed");
  return 1;
}

/* __gc and __close: close with the configured timeout, give leftovers to the reporter. */
static int queue_finalize(lua_State *L, int release) {
  queue_ud *u = (queue_ud *)luaL_checkudata(L, 1, QUEUE_MT);
  cio_queue *q = u->q;
  if (q == NULL) return 0;
  cio_queue_shutdown(q, cio_queue_config_of(q)->close_timeout_ms);
  queue_push_reporter(L, 1);
  if (lua_isfunction(L, -1)) {
    queue_push_reports(L, q);
    if (!lua_isnil(L, -1)) {
      if (lua_pcall(L, 1, 0, 0) != 0) {
        fprintf(stderr, "customerio.Queue: on_error failed: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    } else {
      lua_pop(L, 2);
    }
  } else {
    cio_queue_stats s;
    lua_pop(L, 1);
    cio_queue_get_stats(q, &s);
    if (s.reports > 0)
      fprintf(stderr, "customerio.Queue: %lu report(s) of failed operations were never polled\n",
              (unsigned long)s.reports);
  }
  if (release) {
    u->q = NULL;
    cio_queue_free(q);
  }
  return 0;
}

static int queue_gc(lua_State *L) {
  return queue_finalize(L, 1);
}

#if LUA_VERSION_NUM >= 504
static int queue_close_mm(lua_State *L) {
  return queue_finalize(L, 0);
}
#endif

static int queue_tostring(lua_State *L) {
  queue_ud *u = (queue_ud *)luaL_checkudata(L, 1, QUEUE_MT);
  lua_pushfstring(L, "customerio.queue (%s)", u->q == NULL ? "released" : (cio_queue_closed(u->q) ? "closed" : "open"));
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The spool for the nginx queue (customerio.queue.ngx): spool.c, one Lua thread, no worker. */

typedef struct {
  cio_spool *s;
} spool_ud;

static cio_spool *spool_check(lua_State *L) {
  spool_ud *u = (spool_ud *)luaL_checkudata(L, 1, SPOOL_MT);
  if (u->s == NULL) luaL_error(L, "spool is closed");
  return u->s;
}

/***
 * Open a spool directory and take a lane (docs/queue.md "The durable spool").
 * @function spool_open
 * @tparam string dir
 * @tparam table opts `max_bytes`, `segment_bytes`, `sync` (boolean: fsync on roll and close)
 * @return spool, or nil and a message
 */
static int spool_lua_open(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  cio_spool_options o;
  char err[512];
  spool_ud *u;
  luaL_checktype(L, 2, LUA_TTABLE);
  o.max_bytes = (uint64_t)queue_opt_num(L, 2, "max_bytes", 1);
  o.segment_bytes = (uint64_t)queue_opt_num(L, 2, "segment_bytes", 64);
  lua_getfield(L, 2, "sync");
  o.sync = lua_toboolean(L, -1);
  lua_pop(L, 1);
  u = (spool_ud *)lua_newuserdata(L, sizeof *u);
  u->s = NULL;
  luaL_getmetatable(L, SPOOL_MT);
  lua_setmetatable(L, -2);
  u->s = cio_spool_open(dir, &o, err, sizeof err);
  if (u->s == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

/* cio_spool_replay's callbacks: the Lua function at index 2 gets (json, key|nil); problems
 * go into the table at index 3. A Lua error stops the replay (the message is kept at 4). */
static int spool_lua_record(void *ud, const char *key, size_t key_len, const char *data, size_t len) {
  lua_State *L = (lua_State *)ud;
  lua_pushvalue(L, 2);
  lua_pushlstring(L, data, len);
  if (key_len > 0) lua_pushlstring(L, key, key_len);
  else lua_pushnil(L);
  if (lua_pcall(L, 2, 0, 0) != 0) {
    lua_replace(L, 4);
    return -1;
  }
  return 0;
}

static void spool_lua_problem(void *ud, const char *message) {
  lua_State *L = (lua_State *)ud;
  lua_pushstring(L, message);
  lua_rawseti(L, 3, (int)lua_rawlen(L, 3) + 1);
}

/***
 * Take every lane nobody holds and hand each operation it left to fn (which appends it again),
 * oldest first; then delete the old files. Call once after open, and again to adopt lanes
 * released later (nginx reload).
 * @function spool:replay
 * @tparam function fn `fn(json, key)`
 * @return a list of problem messages (damaged files skipped), or nil and a message
 */
static int spool_lua_replay(lua_State *L) {
  cio_spool *s = spool_check(L);
  char err[512];
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_newtable(L);  /* 3: problems */
  lua_pushnil(L);   /* 4: a Lua error of fn */
  if (cio_spool_replay(s, spool_lua_record, spool_lua_problem, L, err, sizeof err) != 0) {
    lua_pushnil(L);
    if (lua_isnil(L, 4)) lua_pushstring(L, err);
    else lua_pushvalue(L, 4);
    return 2;
  }
  lua_settop(L, 3);
  return 1;
}

/***
 * Append one record (written before this returns).
 * @function spool:append
 * @tparam string json
 * @tparam[opt] string key
 * @tparam[opt] boolean force past max_bytes (a replay)
 * @return its id, or nil and "full", or nil, "io" and a message
 */
static int spool_lua_append(lua_State *L) {
  cio_spool *s = spool_check(L);
  size_t len, key_len = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  const char *key = luaL_optlstring(L, 3, "", &key_len);
  char err[512];
  uint64_t id = 0;
  int rc = cio_spool_append(s, key, key_len, data, len, lua_toboolean(L, 4), &id, err, sizeof err);
  if (rc == CIO_SPOOL_OK) {
    lua_pushnumber(L, (lua_Number)id);
    return 1;
  }
  lua_pushnil(L);
  if (rc == CIO_SPOOL_FULL) {
    lua_pushliteral(L, "full");
    return 2;
  }
  lua_pushliteral(L, "io");
  lua_pushstring(L, err);
  return 3;
}

/***
 * Mark records acknowledged (buffered; written by flush).
 * @function spool:ack
 * @param ... record ids
 */
static int spool_lua_ack(lua_State *L) {
  cio_spool *s = spool_check(L);
  int i, n = lua_gettop(L);
  for (i = 2; i <= n; i++) {
    lua_Number id = luaL_checknumber(L, i);
    if (id >= 1) cio_spool_ack(s, (uint64_t)id);
  }
  return 0;
}

/***
 * Write buffered acknowledgements; delete segments no longer needed.
 * @function spool:flush
 */
static int spool_lua_flush(lua_State *L) {
  cio_spool_flush(spool_check(L));
  return 0;
}

/***
 * fsync what was appended since the last sync.
 * @function spool:sync
 * @return true, or nil and a message
 */
static int spool_lua_sync(lua_State *L) {
  char err[512];
  if (cio_spool_sync(spool_check(L), err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/***
 * Unacknowledged record bytes in this lane.
 * @function spool:bytes
 */
static int spool_lua_bytes(lua_State *L) {
  lua_pushnumber(L, (lua_Number)cio_spool_bytes(spool_check(L)));
  return 1;
}

/***
 * Flush acknowledgements, release the lane. Idempotent (also __gc).
 * @function spool:close
 */
static int spool_lua_close(lua_State *L) {
  spool_ud *u = (spool_ud *)luaL_checkudata(L, 1, SPOOL_MT);
  cio_spool_close(u->s);
  u->s = NULL;
  return 0;
}

static const luaL_Reg spool_methods[] = {
  {"replay", spool_lua_replay},
  {"append", spool_lua_append},
  {"ack", spool_lua_ack},
  {"flush", spool_lua_flush},
  {"sync", spool_lua_sync},
  {"bytes", spool_lua_bytes},
  {"close", spool_lua_close},
  {NULL, NULL},
};

static const luaL_Reg queue_methods[] = {
  {"push", queue_push},
  {"poll", queue_poll},
  {"flush", queue_flush},
  {"close", queue_close},
  {"stats", queue_stats},
  {"forked", queue_forked},
  {NULL, NULL},
};

static const luaL_Reg queue_metamethods[] = {
  {"__gc", queue_gc},
#if LUA_VERSION_NUM >= 504
  {"__close", queue_close_mm},
#endif
  {"__tostring", queue_tostring},
  {NULL, NULL},
};

static const luaL_Reg queue_funcs[] = {
  {"queue_new", queue_new},
  {"spool_open", spool_lua_open},
  {NULL, NULL},
};

int queue_open(lua_State *L) {
  if (luaL_newmetatable(L, QUEUE_MT)) {
    luaL_setfuncs(L, queue_metamethods, 0);
    luaL_newlib(L, queue_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, SPOOL_MT)) {
    lua_pushcfunction(L, spool_lua_close);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, spool_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, queue_funcs, 0);
  /* The bytes a batch adds around its operations, for customerio.queue's size checks. */
  lua_pushinteger(L, (lua_Integer)CIO_QUEUE_BATCH_OVERHEAD);
  lua_setfield(L, -2, "queue_batch_overhead");
  return 0;
}

/*
 * queue_worker.c - the background delivery queue behind customerio.Queue: the worker. Its Lua
 * binding is queue.c; this file does not include lua.h (see queue_worker.h).
 *
 * The Lua side encodes each Track v2 operation to JSON and pushes the bytes
 * here; a worker pthread with its own libcurl multi handle packs them into
 * `{"batch":[op,op,...]}` bodies of at most batch_bytes and POSTs them to
 * /api/v2/batch, several at a time over kept-alive connections. The worker
 * never touches the Lua state: what Lua must hear about (operations that
 * could not be delivered) goes into a list of reports that Lua drains with
 * poll() and hands to its on_error callback on its own thread.
 *
 * Shared state lives in queue_state, guarded by one mutex:
 *   pending   FIFO of encoded operations not yet in a batch
 *   retries   batches waiting for their backoff to pass
 *   reports   failed operations waiting for Lua
 *   counters  enqueued, sent, failed, dropped, retried, ...
 * Batches in transfer belong to the worker alone (its slots). Memory is
 * bounded by max_events and max_bytes, counted over pending, retrying and
 * in-flight operations: push() refuses an operation that would pass them.
 *
 * Retries follow customerio.http.retry (Node 5.x): retryable statuses, network
 * and timeout failures are replayed with exponential backoff or Retry-After,
 * up to max_retries and a total backoff budget. A 207 response means the
 * operations it lists were rejected for good (validation): they are reported,
 * the others counted as sent, and nothing is resent. Event ULIDs make a
 * replayed batch safe to count once on the server side.
 *
 * Shutdown: close() (and __gc, __close, and an atexit hook for os.exit
 * without closing the state) sends everything still held, waits up to a
 * timeout, then gives up on what is left, reporting it, and joins the thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "http_common.h"
#include "queue_worker.h"
#include "resolve.h"
#include "spool.h"

#define QUEUE_MAX_RESPONSE (1024 * 1024)
#define QUEUE_IDLE_WAIT_MS 1000
/* How often batches waiting for the host name's lookup look again (ms). */
#define QUEUE_DNS_RECHECK_MS 10

#if LIBCURL_VERSION_NUM >= 0x074400 /* 7.68.0: curl_multi_poll and curl_multi_wakeup */
#define QUEUE_HAS_WAKEUP 1
#else
#define QUEUE_HAS_WAKEUP 0
#endif

typedef cio_queue_report queue_report;

typedef struct queue_op {
  struct queue_op *next;
  int64_t at_ms; /* monotonic time of enqueue (age trigger) */
  uint64_t seq;  /* 1, 2, 3, ... in push order: the operation's number for a spool */
  uint64_t key;  /* hash of its ordering key; 0: none (never held back) */
  uint64_t sid;  /* its record in the spool; 0: none */
  size_t len;
  char data[];
} queue_op;

/* One ordering key with operations in a batch (in flight or waiting to retry): the key is
 * held while count > 0. owner: the batch that holds it; skip: the last batch-building pass
 * that left one of its operations behind (its later operations must stay behind too). */
typedef struct {
  uint64_t hash, owner, skip; /* hash 0: free slot */
  size_t count;
} queue_key;

/* A batch: its body, and where each operation sits in it (op i spans offs[i] .. offs[i+1]-1). */
typedef struct queue_batch {
  struct queue_batch *next; /* retry list */
  uint64_t id;
  char *body;
  size_t len;
  size_t n;
  size_t *offs;
  uint64_t *seqs, *keys, *sids; /* of each operation */
  size_t bytes;   /* sum of operation lengths, what max_bytes counts */
  int retries;    /* replays so far */
  double waited;  /* ms of backoff so far */
  int64_t due_ms; /* when a waiting retry may start */
} queue_batch;

/* Operations the worker could not deliver, waiting for Lua's poll(). */
typedef struct {
  cio_buffer buf;
  int truncated;
} queue_buf;

typedef struct {
  CURL *easy;
  queue_batch *batch; /* NULL when the slot is free */
  struct curl_slist *retry_headers;
  cio_body body; /* libcurl's reader over the batch's body */
  struct curl_slist *resolve; /* CURLOPT_RESOLVE entry of the URL's host (queue_dns_wait) */
  queue_buf resp;
  char retry_after[64];
  char errbuf[CURL_ERROR_SIZE];
} queue_slot;

typedef struct cio_queue {
  pthread_mutex_t mu;
  pthread_cond_t progress; /* signalled whenever operations finish */
  pthread_t thread;
  int thread_started, joined, closed, stopping, abort_all, wake_pending;

  /* Configuration, read-only once the thread runs. */
  cio_queue_config cfg;

  /* Shared, under mu. */
  queue_op *head, *tail;
  size_t queued, queued_bytes;
  queue_batch *retry_list;
  size_t inflight, inflight_bytes; /* in slots or waiting to retry */
  queue_report *rep_head, *rep_tail;
  size_t reports;
  uint64_t enqueued, sent, failed, dropped, rejected, retried, requests, batches, taken, flush_target;
  /* Ordering: the held keys (open addressing, linear probing, capacity a power of 2). stalled:
   * the last pass found every pending operation held back; no pass until a key is released
   * or a free operation arrives. */
  queue_key *keys;
  size_t key_cap, key_count;
  uint64_t passes;
  int stalled;
  /* The running flush: operations up to flush_seq finished since it started. */
  uint64_t flush_seq, flush_sent, flush_failed;
  pid_t pid; /* the process that made the queue (fork detection) */
  /* The spool (NULL: none). Appends and acknowledgements happen under mu; fsync does not. */
  cio_spool *spool;
  int64_t spool_dirty_at; /* when the first append since the last fsync happened (0: clean) */
  uint64_t replayed, spool_errors;
  char spool_err[512]; /* why the last push (Lua thread) or the start failed */
  unsigned long fork_gen; /* queue_fork_gen then */

  /* Worker only. */
  CURLM *multi;
  queue_slot *slots;
  cio_resolver *resolver;     /* created by the worker's first start; see queue_dns_wait */
  char *dns_host, *dns_port;  /* the URL's host (NULL: an IP literal, or no resolver) */
  int active;
  uint64_t rng;

  struct cio_queue *live_next; /* the process-wide list the atexit hook walks */
} queue_state;

static pthread_mutex_t queue_live_mu = PTHREAD_MUTEX_INITIALIZER;
static queue_state *queue_live = NULL;
static int queue_atexit_done = 0;
/* Fork detection without a getpid() system call per push: a pthread_atfork child handler
 * (registered once the library is pinned in memory, as for atexit) bumps the generation. */
static volatile unsigned long queue_fork_gen = 0;
static int queue_atfork_done = 0;

static void queue_on_fork_child(void) {
  queue_fork_gen++;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */

static int64_t queue_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *queue_strdup(const char *s, size_t n) {
  char *p = (char *)malloc(n + 1);
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* xorshift64*, for backoff jitter only. */
static double queue_random(queue_state *q) {
  uint64_t x = q->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  q->rng = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* Appends up to `limit` bytes in all; what is cut off (or cannot be stored) marks it truncated. */
static int queue_buf_append(queue_buf *b, const char *p, size_t n, size_t limit) {
  if (b->buf.len + n > limit) {
    b->truncated = 1;
    n = limit > b->buf.len ? limit - b->buf.len : 0;
    if (n == 0) return 0;
  }
  if (cio_buffer_append(&b->buf, p, n) != 0) {
    b->truncated = 1;
    return -1;
  }
  return 0;
}

static void queue_batch_free(queue_batch *b) {
  if (b == NULL) return;
  free(b->body);
  free(b->offs);
  free(b->seqs);
  free(b->keys);
  free(b->sids);
  free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* Ordering keys (caller holds mu)                                                           */

/* FNV-1a, never 0. Two keys with one hash only hold each other back: never out of order. */
static uint64_t queue_key_hash(const char *key, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i;
  for (i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 0x100000001b3ULL;
  }
  return h == 0 ? 1 : h;
}

static queue_key *queue_key_find(queue_state *q, uint64_t h) {
  size_t i, mask;
  if (q->key_cap == 0) return NULL;
  mask = q->key_cap - 1;
  for (i = (size_t)h & mask; q->keys[i].hash != 0; i = (i + 1) & mask)
    if (q->keys[i].hash == h) return &q->keys[i];
  return NULL;
}

static int queue_key_grow(queue_state *q) {
  size_t cap = q->key_cap ? q->key_cap * 2 : 64, i, mask = cap - 1;
  queue_key *t = (queue_key *)calloc(cap, sizeof *t);
  if (t == NULL) return -1;
  for (i = 0; i < q->key_cap; i++)
    if (q->keys[i].hash != 0) {
      size_t j = (size_t)q->keys[i].hash & mask;
      while (t[j].hash != 0) j = (j + 1) & mask;
      t[j] = q->keys[i];
    }
  free(q->keys);
  q->keys = t;
  q->key_cap = cap;
  return 0;
}

/* The entry of h, added when missing; NULL when out of memory. */
static queue_key *queue_key_add(queue_state *q, uint64_t h) {
  queue_key *e = queue_key_find(q, h);
  size_t i, mask;
  if (e != NULL) return e;
  if ((q->key_count + 1) * 2 > q->key_cap && queue_key_grow(q) != 0) return NULL;
  mask = q->key_cap - 1;
  for (i = (size_t)h & mask; q->keys[i].hash != 0; i = (i + 1) & mask) continue;
  e = &q->keys[i];
  e->hash = h;
  e->owner = e->skip = 0;
  e->count = 0;
  q->key_count++;
  return e;
}

/* One operation of key h is finished: the key is free when it was the last one held. */
static void queue_key_release(queue_state *q, uint64_t h) {
  queue_key *e = h != 0 ? queue_key_find(q, h) : NULL;
  size_t mask, i, j;
  if (e == NULL || --e->count > 0) return;
  /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
  mask = q->key_cap - 1;
  i = j = (size_t)(e - q->keys);
  for (;;) {
    size_t home;
    j = (j + 1) & mask;
    if (q->keys[j].hash == 0) break;
    home = (size_t)q->keys[j].hash & mask;
    if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
    q->keys[i] = q->keys[j];
    i = j;
  }
  q->keys[i].hash = 0;
  q->key_count--;
  if (q->key_count == 0 && q->key_cap > 4096) {
    free(q->keys);
    q->keys = NULL;
    q->key_cap = 0;
  }
}

/* Whether key h is held by a batch in flight or waiting to retry. */
static int queue_key_held(queue_state *q, uint64_t h) {
  queue_key *e = h != 0 ? queue_key_find(q, h) : NULL;
  return e != NULL && e->count > 0;
}

/*
 * The one place where an operation is finished: accepted by the server (ok) or given up on
 * (it is in a report for on_error). Its key is released and the running flush counts it. A
 * durable spool marks `seq` acknowledged here (segments whose operations are all finished can
 * go). Caller holds mu; the caller also updates inflight and signals progress.
 */
static void queue_op_done(queue_state *q, uint64_t seq, uint64_t key, uint64_t sid, int ok, int keep) {
  queue_key_release(q, key);
  /* Accepted, or refused for good: a replay would change nothing. Kept (keep): failures a
   * later process may still deliver (network, 5xx, retries exhausted, closed first). */
  if (sid != 0 && (ok || !keep)) cio_spool_ack(q->spool, sid);
  if (ok) q->sent++;
  else q->failed++;
  if (seq <= q->flush_seq) {
    if (ok) q->flush_sent++;
    else q->flush_failed++;
  }
}

/* Every operation of batch b is finished: failed[i] (or all_failed) says which were not
 * accepted; keep: those failures stay in the spool for a later process. Caller holds mu. */
static void queue_batch_done(queue_state *q, const queue_batch *b, const unsigned char *failed, int all_failed,
                             int keep) {
  size_t i;
  for (i = 0; i < b->n; i++)
    queue_op_done(q, b->seqs[i], b->keys[i], b->sids[i], !(all_failed || (failed != NULL && failed[i])), keep);
  if (q->spool != NULL) cio_spool_flush(q->spool);
  q->inflight -= b->n;
  q->inflight_bytes -= b->bytes;
  q->stalled = 0;
  pthread_cond_broadcast(&q->progress);
}

static void queue_report_free(queue_report *r) {
  free(r->ops);
  free(r->offs);
  free(r->message);
  free(r->body);
  free(r->detail);
  free(r);
}

/* Wake the worker (from any thread). Caller holds mu. */
static void queue_wake_locked(queue_state *q) {
  if (q->wake_pending || q->multi == NULL) return;
  q->wake_pending = 1;
#if QUEUE_HAS_WAKEUP
  curl_multi_wakeup(q->multi);
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Reports (worker side)                                                                     */

static queue_report *queue_report_new(const char *kind, long status, int attempts, const char *message,
                                      const queue_buf *resp) {
  queue_report *r = (queue_report *)calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->kind = kind;
  r->status = status;
  r->attempts = attempts;
  if (message != NULL && message[0] != '\0') r->message = queue_strdup(message, strlen(message));
  if (resp != NULL && resp->buf.len > 0) {
    r->body = queue_strdup(resp->buf.data, resp->buf.len);
    if (r->body != NULL) r->body_len = resp->buf.len;
  }
  return r;
}

/* Queue a report, or say on stderr what was lost when there is no memory to keep it. */
static void queue_report_push_locked(queue_state *q, queue_report *r, size_t n, const char *kind) {
  if (r == NULL) {
    fprintf(stderr, "customerio.Queue: %lu operation(s) failed (%s); out of memory to report them\n",
            (unsigned long)n, kind);
    return;
  }
  if (q->rep_tail) q->rep_tail->next = r;
  else q->rep_head = r;
  q->rep_tail = r;
  q->reports++;
}

/* The whole batch failed: hand its body over to a report. */
static void queue_fail_batch(queue_state *q, queue_batch *b, const char *kind, long status, const char *message,
                             const queue_buf *resp) {
  queue_report *r = queue_report_new(kind, status, b->retries + 1, message, resp);
  if (r != NULL) {
    r->batch = b->id;
    r->ops = b->body;
    r->offs = b->offs;
    r->n = b->n;
    b->body = NULL;
    b->offs = NULL;
  }
  pthread_mutex_lock(&q->mu);
  /* A 4xx that is not retried is the server's final word; anything else may go through later. */
  queue_batch_done(q, b, NULL, 1,
                   !(strcmp(kind, "http") == 0 && status >= 400 && status < 500 && !q->cfg.retry.retry_status[status]));
  queue_report_push_locked(q, r, b->n, kind);
  pthread_mutex_unlock(&q->mu);
  queue_batch_free(b);
}

/* A report for operation i of a batch (207), with the error entries that name it. */
static queue_report *queue_report_op(queue_batch *b, size_t i, cJSON *entries, int attempts, long status) {
  queue_report *r = queue_report_new("http", status, attempts, NULL, NULL);
  size_t start = b->offs[i], len = b->offs[i + 1] - 1 - start;
  if (r == NULL) return NULL;
  r->ops = queue_strdup(b->body + start, len);
  r->offs = (size_t *)malloc(2 * sizeof(size_t));
  r->detail = cJSON_PrintUnformatted(entries);
  if (r->ops == NULL || r->offs == NULL || r->detail == NULL) {
    queue_report_free(r);
    return NULL;
  }
  r->offs[0] = 0;
  r->offs[1] = len + 1;
  r->n = 1;
  r->batch = b->id;
  return r;
}

/* 207: split the rejected operations (by batch_index) from the accepted ones. */
static void queue_partial(queue_state *q, queue_batch *b, const queue_slot *s, long status) {
  cJSON *root = s->resp.truncated ? NULL : cJSON_ParseWithLength(s->resp.buf.data ? s->resp.buf.data : "", s->resp.buf.len);
  cJSON *errs = root ? cJSON_GetObjectItemCaseSensitive(root, "errors") : NULL;
  unsigned char *bad = NULL;
  size_t i, nbad = 0;
  queue_report *first = NULL, *last = NULL;

  if (cJSON_IsArray(errs)) bad = (unsigned char *)calloc(b->n ? b->n : 1, 1);
  if (bad != NULL) {
    cJSON *e;
    cJSON_ArrayForEach(e, errs) {
      cJSON *idx = cJSON_GetObjectItemCaseSensitive(e, "batch_index");
      if (cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < (double)b->n &&
          idx->valuedouble == (double)(size_t)idx->valuedouble) {
        size_t k = (size_t)idx->valuedouble;
        if (!bad[k]) nbad++;
        bad[k] = 1;
      }
    }
    for (i = 0; i < b->n; i++) {
      cJSON *entries, *e2;
      queue_report *r;
      if (!bad[i]) continue;
      entries = cJSON_CreateArray();
      if (entries != NULL) {
        cJSON_ArrayForEach(e2, errs) {
          cJSON *idx = cJSON_GetObjectItemCaseSensitive(e2, "batch_index");
          if (cJSON_IsNumber(idx) && idx->valuedouble == (double)i) {
            cJSON *copy = cJSON_Duplicate(e2, 1);
            if (copy == NULL || !cJSON_AddItemToArray(entries, copy)) cJSON_Delete(copy);
          }
        }
      }
      r = entries ? queue_report_op(b, i, entries, b->retries + 1, status) : NULL;
      cJSON_Delete(entries);
      if (r == NULL) {
        fprintf(stderr, "customerio.Queue: operation %lu rejected (207); out of memory to report it\n",
                (unsigned long)i);
        continue;
      }
      if (last) last->next = r;
      else first = r;
      last = r;
    }
  }
  pthread_mutex_lock(&q->mu);
  if (bad == NULL && cJSON_IsArray(errs))
    fprintf(stderr, "customerio.Queue: 207 response; out of memory to split it, operations counted as sent\n");
  if (bad == NULL && b->n > 0 && !cJSON_IsArray(errs)) {
    /* A 207 without a readable error list: the server accepted the request; say so once. */
    queue_report *r = queue_report_new("http", status, b->retries + 1,
                                       "207 response without a readable errors list; operations counted as sent",
                                       &s->resp);
    if (r != NULL) r->batch = b->id;
    queue_report_push_locked(q, r, 0, "http");
  }
  (void)nbad;
  queue_batch_done(q, b, bad, 0, 0);
  while (first != NULL) {
    queue_report *next = first->next;
    first->next = NULL;
    queue_report_push_locked(q, first, 1, "http");
    first = next;
  }
  pthread_mutex_unlock(&q->mu);
  free(bad);
  cJSON_Delete(root);
  queue_batch_free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* Transfers (worker side)                                                                   */

static size_t queue_on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  queue_slot *s = (queue_slot *)userdata;
  size_t n = size * nmemb;
  queue_buf_append(&s->resp, ptr, n, QUEUE_MAX_RESPONSE);
  return n; /* keep reading; a long body is only truncated */
}

static size_t queue_on_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
  queue_slot *s = (queue_slot *)userdata;
  size_t n = size * nmemb;
  static const char name[] = "retry-after:";
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) s->retry_after[0] = '\0';
  if (n > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
    const char *v = ptr + sizeof name - 1, *end = ptr + n;
    size_t len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
    len = (size_t)(end - v);
    if (len >= sizeof s->retry_after) len = sizeof s->retry_after - 1;
    memcpy(s->retry_after, v, len);
    s->retry_after[len] = '\0';
  }
  return n;
}

static int queue_slot_init(queue_state *q, queue_slot *s) {
  const char *failed = "";
  CURL *e = curl_easy_init();
  if (e == NULL) return -1;
  s->easy = e;
  if (cio_curl_setup(e, s->errbuf, q->cfg.connect_timeout_ms, q->cfg.ca_file, &failed) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)s) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, queue_on_body) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)s) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, queue_on_header) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)s) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_URL, q->cfg.url) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, q->cfg.timeout_ms) != CURLE_OK)
    return -1;
  return 0;
}

static void queue_slot_release(queue_slot *s) {
  if (s->easy) curl_easy_cleanup(s->easy);
  s->easy = NULL;
  curl_slist_free_all(s->retry_headers);
  s->retry_headers = NULL;
  curl_slist_free_all(s->resolve);
  s->resolve = NULL;
  cio_buffer_free(&s->resp.buf);
}

/* Start sending batch b on slot s. Returns 0, or -1 (the batch is left to the caller). */
static int queue_slot_start(queue_state *q, queue_slot *s, queue_batch *b) {
  struct curl_slist *headers = q->cfg.headers;
  curl_slist_free_all(s->retry_headers);
  s->retry_headers = NULL;
  if (b->retries > 0) {
    struct curl_slist *h;
    char line[40];
    for (h = q->cfg.headers; h != NULL; h = h->next) {
      struct curl_slist *grown = curl_slist_append(s->retry_headers, h->data);
      if (grown == NULL) return -1;
      s->retry_headers = grown;
    }
    snprintf(line, sizeof line, "X-Retry-Count: %d", b->retries);
    headers = curl_slist_append(s->retry_headers, line);
    if (headers == NULL) return -1;
    s->retry_headers = headers;
  }
  s->resp.buf.len = 0;
  s->resp.truncated = 0;
  s->retry_after[0] = '\0';
  curl_slist_free_all(s->resolve);
  s->resolve = NULL;
  if (q->dns_host != NULL &&
      cio_resolve_host(q->resolver, q->dns_host, q->dns_port, &s->resolve, s->errbuf) == CIO_RESOLVE_NOMEM)
    return -1;
  s->errbuf[0] = '\0';
  if (curl_easy_setopt(s->easy, CURLOPT_RESOLVE, s->resolve) != CURLE_OK ||
      curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
      cio_set_body(s->easy, &s->body, b->body, b->len) != CURLE_OK)
    return -1;
  if (curl_multi_add_handle(q->multi, s->easy) != CURLM_OK) return -1;
  s->batch = b;
  q->active++;
  return 0;
}

/*
 * Whether the batches about to start must wait for the URL's host name. It is resolved by
 * resolve.c's threads and handed to libcurl (queue_slot_start), never resolved by libcurl on
 * this thread: libcurl joins its resolver thread when a transfer ends, so a stalled lookup
 * would hold the worker, and close(ms), which joins the worker, would wait for the lookup.
 * Waiting batches go back to the retry list (no attempt counted), due in a few ms. A failed
 * lookup does not wait: libcurl then resolves itself and reports the failure.
 */
static int queue_dns_wait(queue_state *q, queue_batch **starts, int n, int64_t *deadline) {
  char err[CURL_ERROR_SIZE];
  struct curl_slist *probe = NULL;
  int64_t due;
  int i, rc;
  if (q->resolver == NULL && (q->resolver = cio_resolver_new()) != NULL &&
      cio_resolve_target(q->cfg.url, &q->dns_host, &q->dns_port) != 0)
    q->dns_host = q->dns_port = NULL;
  if (q->dns_host == NULL) return 0;
  rc = cio_resolve_host(q->resolver, q->dns_host, q->dns_port, &probe, err);
  curl_slist_free_all(probe);
  if (rc != CIO_RESOLVE_PENDING) return 0;
  due = queue_now_ms() + QUEUE_DNS_RECHECK_MS;
  pthread_mutex_lock(&q->mu);
  for (i = 0; i < n; i++) {
    starts[i]->due_ms = due;
    starts[i]->next = q->retry_list;
    q->retry_list = starts[i];
  }
  pthread_mutex_unlock(&q->mu);
  if (due < *deadline) *deadline = due;
  return 1;
}

/* Milliseconds to wait before replay number n: customerio.http.retry's policy (Retry-After wins). */
static double queue_backoff(queue_state *q, int n, const char *retry_after) {
  const cio_retry_policy *p = &q->cfg.retry;
  double ms;
  if (p->respect_retry_after && retry_after != NULL && retry_after[0] != '\0') {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (cio_retry_after(retry_after, strlen(retry_after), (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, &ms) ==
        0) {
      if (ms > p->retry_after_max * 1000) ms = p->retry_after_max * 1000;
      return ms;
    }
  }
  return cio_backoff_ms(p->min_timeout, p->max_timeout, n, queue_random(q));
}

unsigned cio_queue_kind_bit(const char *kind) {
  if (strcmp(kind, "network") == 0) return CIO_KIND_NETWORK;
  if (strcmp(kind, "timeout") == 0) return CIO_KIND_TIMEOUT;
  if (strcmp(kind, "tls") == 0) return CIO_KIND_TLS;
  if (strcmp(kind, "request") == 0) return CIO_KIND_REQUEST;
  return 0;
}

/* A transfer ended (rc from libcurl; CURLE_OK means a response was read). */
static void queue_finish(queue_state *q, queue_slot *s, CURLcode rc) {
  queue_batch *b = s->batch;
  long status = 0;
  int retryable;
  const char *kind;
  char message[CURL_ERROR_SIZE + 64];

  curl_multi_remove_handle(q->multi, s->easy);
  s->batch = NULL;
  q->active--;
  pthread_mutex_lock(&q->mu);
  q->requests++;
  pthread_mutex_unlock(&q->mu);

  if (rc == CURLE_OK) {
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 207) {
      queue_partial(q, b, s, status);
      return;
    }
    if (status >= 200 && status < 300) {
      pthread_mutex_lock(&q->mu);
      queue_batch_done(q, b, NULL, 0, 0);
      pthread_mutex_unlock(&q->mu);
      queue_batch_free(b);
      return;
    }
    kind = "http";
    retryable = status > 0 && status < 600 && q->cfg.retry.retry_status[status];
    snprintf(message, sizeof message, "HTTP status %ld", status);
  } else {
    kind = cio_curl_error_kind(rc);
    retryable = (q->cfg.retry.retry_kinds & cio_queue_kind_bit(kind)) != 0;
    snprintf(message, sizeof message, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
  }

  if (retryable && b->retries < q->cfg.retry.max_retries) {
    double wait = queue_backoff(q, b->retries, rc == CURLE_OK ? s->retry_after : NULL);
    if (b->waited + wait <= q->cfg.retry.max_total_backoff) {
      b->waited += wait;
      b->retries++;
      b->due_ms = queue_now_ms() + (int64_t)wait;
      pthread_mutex_lock(&q->mu);
      q->retried++;
      b->next = q->retry_list;
      q->retry_list = b;
      pthread_mutex_unlock(&q->mu);
      return;
    }
  }
  queue_fail_batch(q, b, kind, status, message, rc == CURLE_OK ? &s->resp : NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* The worker                                                                                */

/* Size of one body holding every pending operation. Caller holds mu. */
static size_t queue_pending_size_locked(const queue_state *q) {
  return q->queued == 0 ? 0 : CIO_QUEUE_BATCH_OVERHEAD + q->queued_bytes + q->queued - 1;
}

/* Whether the pending operations make a batch now. Caller holds mu. */
static int queue_ready_locked(queue_state *q, int64_t now) {
  if (q->queued == 0 || q->stalled) return 0;
  if (q->stopping || q->taken < q->flush_target) return 1;
  if (queue_pending_size_locked(q) >= q->cfg.batch_bytes) return 1;
  return now - q->head->at_ms >= q->cfg.flush_interval_ms;
}

/*
 * Detach the operations of the next batch from the pending FIFO, in FIFO order, skipping those
 * whose key is held by another batch (or, with CIO_ORDER_STRICT, by this one), and every later
 * operation of a key skipped in this pass: skipped operations stay where they are. One walk,
 * a hash lookup per operation. NULL when nothing can go now (then *id is unused); *oom when the
 * key table could not grow. Caller holds mu.
 */
static queue_op *queue_take_locked(queue_state *q, size_t *n_out, size_t *size_out, size_t *bytes_out,
                                   uint64_t *id_out, int *oom) {
  queue_op **pp = &q->head, *prev = NULL, *first = NULL, *last = NULL, *op;
  size_t size = CIO_QUEUE_BATCH_OVERHEAD, n = 0, bytes = 0;
  uint64_t id = ++q->passes;
  int strict = q->cfg.order == CIO_ORDER_STRICT;
  while ((op = *pp) != NULL) {
    size_t add = op->len + (n > 0 ? 1 : 0);
    queue_key *e = NULL;
    if (op->key != 0) {
      e = queue_key_find(q, op->key);
      if (e != NULL && (e->skip == id || (e->count > 0 && (strict || e->owner != id)))) {
        e->skip = id;
        prev = op;
        pp = &op->next;
        continue;
      }
    }
    if (n > 0 && size + add > q->cfg.batch_bytes) break;
    if (op->key != 0) {
      if (e == NULL) e = queue_key_add(q, op->key);
      if (e == NULL) {
        *oom = 1;
        break;
      }
      e->count++;
      e->owner = id;
    }
    *pp = op->next;
    if (q->tail == op) q->tail = prev;
    op->next = NULL;
    if (last != NULL) last->next = op;
    else first = op;
    last = op;
    size += add;
    bytes += op->len;
    n++;
  }
  if (n == 0) {
    if (!*oom) q->stalled = 1;
    return NULL;
  }
  q->queued -= n;
  q->queued_bytes -= bytes;
  q->inflight += n;
  q->inflight_bytes += bytes;
  q->taken += n;
  q->batches++;
  *n_out = n;
  *size_out = size;
  *bytes_out = bytes;
  *id_out = id;
  return first;
}

/* Put operations back at the head of the FIFO (no memory for their batch) and release their
 * keys. Each key's operations left in the FIFO all came after the ones taken, so the order
 * of every key is kept. Caller holds mu. */
static void queue_untake_locked(queue_state *q, queue_op *chain, size_t n, size_t bytes) {
  queue_op *last = chain;
  queue_key_release(q, last->key);
  while (last->next != NULL) {
    last = last->next;
    queue_key_release(q, last->key);
  }
  q->stalled = 0;
  last->next = q->head;
  q->head = chain;
  if (q->tail == NULL) q->tail = last;
  q->queued += n;
  q->queued_bytes += bytes;
  q->inflight -= n;
  q->inflight_bytes -= bytes;
  q->taken -= n;
  q->batches--;
}

/* Build a batch body from a detached chain; frees the chain on success. */
static queue_batch *queue_build(queue_op *chain, size_t n, size_t size, size_t bytes, uint64_t id) {
  queue_batch *b = (queue_batch *)calloc(1, sizeof *b);
  size_t at, i;
  queue_op *op;
  if (b == NULL) return NULL;
  b->id = id;
  b->body = (char *)malloc(size + 1);
  b->offs = (size_t *)malloc((n + 1) * sizeof(size_t));
  b->seqs = (uint64_t *)malloc(n * sizeof(uint64_t));
  b->keys = (uint64_t *)malloc(n * sizeof(uint64_t));
  b->sids = (uint64_t *)malloc(n * sizeof(uint64_t));
  if (b->body == NULL || b->offs == NULL || b->seqs == NULL || b->keys == NULL || b->sids == NULL) {
    queue_batch_free(b);
    return NULL;
  }
  at = sizeof CIO_QUEUE_BATCH_OPEN - 1;
  memcpy(b->body, CIO_QUEUE_BATCH_OPEN, at);
  for (op = chain, i = 0; op != NULL; op = op->next, i++) {
    if (i > 0) b->body[at++] = ',';
    b->offs[i] = at;
    b->seqs[i] = op->seq;
    b->keys[i] = op->key;
    b->sids[i] = op->sid;
    memcpy(b->body + at, op->data, op->len);
    at += op->len;
  }
  b->offs[n] = at + 1;
  memcpy(b->body + at, CIO_QUEUE_BATCH_CLOSE, sizeof CIO_QUEUE_BATCH_CLOSE - 1);
  at += sizeof CIO_QUEUE_BATCH_CLOSE - 1;
  b->body[at] = '\0';
  b->len = at;
  b->n = n;
  b->bytes = bytes;
  while (chain != NULL) {
    op = chain->next;
    free(chain);
    chain = op;
  }
  return b;
}

/* Give up on everything still held (close timed out). */
static void queue_abort_all(queue_state *q) {
  int i;
  queue_op *chain;
  queue_batch *retries;
  size_t n = 0, bytes = 0, size = 0;
  uint64_t id = 0;
  int oom = 0;
  for (i = 0; i < q->cfg.max_in_flight; i++) {
    queue_slot *s = &q->slots[i];
    if (s->batch != NULL) {
      queue_batch *b = s->batch;
      curl_multi_remove_handle(q->multi, s->easy);
      s->batch = NULL;
      q->active--;
      queue_fail_batch(q, b, "closed", 0, "queue closed before delivery was confirmed", NULL);
    }
  }
  pthread_mutex_lock(&q->mu);
  retries = q->retry_list;
  q->retry_list = NULL;
  pthread_mutex_unlock(&q->mu);
  while (retries != NULL) {
    queue_batch *next = retries->next;
    queue_fail_batch(q, retries, "closed", 0, "queue closed while the batch waited to be retried", NULL);
    retries = next;
  }
  /* Nothing holds a key any more: each pass takes at least the first pending operation. */
  pthread_mutex_lock(&q->mu);
  q->stalled = 0;
  chain = q->queued > 0 ? queue_take_locked(q, &n, &size, &bytes, &id, &oom) : NULL;
  pthread_mutex_unlock(&q->mu);
  while (chain != NULL) {
    queue_batch *b = queue_build(chain, n, size, bytes, id);
    if (b == NULL) {
      queue_op *op;
      pthread_mutex_lock(&q->mu);
      for (op = chain; op != NULL; op = op->next) queue_op_done(q, op->seq, op->key, op->sid, 0, 1);
      q->inflight -= n;
      q->inflight_bytes -= bytes;
      q->stalled = 0;
      pthread_mutex_unlock(&q->mu);
      fprintf(stderr, "customerio.Queue: %lu operation(s) not sent at close; out of memory to report them\n",
              (unsigned long)n);
      while (chain != NULL) {
        op = chain->next;
        free(chain);
        chain = op;
      }
    } else {
      queue_fail_batch(q, b, "closed", 0, "queue closed before the operation was sent", NULL);
    }
    pthread_mutex_lock(&q->mu);
    oom = 0;
    chain = q->queued > 0 ? queue_take_locked(q, &n, &size, &bytes, &id, &oom) : NULL;
    pthread_mutex_unlock(&q->mu);
  }
  if (oom) fprintf(stderr, "customerio.Queue: operations left at close; out of memory to report them\n");
  pthread_mutex_lock(&q->mu);
  pthread_cond_broadcast(&q->progress);
  pthread_mutex_unlock(&q->mu);
}

static void *queue_worker(void *arg) {
  queue_state *q = (queue_state *)arg;
  for (;;) {
    int64_t now = queue_now_ms(), deadline = now + QUEUE_IDLE_WAIT_MS;
    int i, running = 0, started = 0, done = 0, oom = 0;
    queue_batch *starts[CIO_QUEUE_MAX_SLOTS];
    struct {
      queue_op *chain;
      size_t n, size, bytes;
      uint64_t id;
    } takes[CIO_QUEUE_MAX_SLOTS];
    int nstarts = 0, ntakes = 0, free_slots = q->cfg.max_in_flight - q->active, sync_now = 0;
    CURLMsg *msg;
    int left;

    pthread_mutex_lock(&q->mu);
    if (q->abort_all) {
      pthread_mutex_unlock(&q->mu);
      queue_abort_all(q);
      break;
    }
    /* Due retries first, then fresh batches, while slots are free. */
    while (free_slots > 0) {
      queue_batch **pp = &q->retry_list, **best = NULL;
      for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->due_ms <= now && (best == NULL || (*pp)->due_ms < (*best)->due_ms)) best = pp;
      if (best != NULL) {
        queue_batch *b = *best;
        *best = b->next;
        b->next = NULL;
        starts[nstarts++] = b;
      } else if (queue_ready_locked(q, now)) {
        takes[ntakes].chain = queue_take_locked(q, &takes[ntakes].n, &takes[ntakes].size, &takes[ntakes].bytes,
                                                &takes[ntakes].id, &oom);
        if (takes[ntakes].chain == NULL) break; /* all held back (stalled), or out of memory */
        ntakes++;
      } else {
        break;
      }
      free_slots--;
    }
    if (q->stopping && q->queued == 0 && q->retry_list == NULL && q->active == 0 && nstarts == 0 && ntakes == 0) {
      pthread_mutex_unlock(&q->mu);
      break;
    }
    /* How long we may sleep: the next retry, the age of the oldest pending operation. */
    {
      queue_batch *b;
      for (b = q->retry_list; b != NULL; b = b->next)
        if (b->due_ms < deadline) deadline = b->due_ms;
      if (q->queued > 0 && free_slots > 0 && !q->stalled) {
        int64_t due = q->head->at_ms + q->cfg.flush_interval_ms;
        if (due < deadline) deadline = due;
      }
      /* The spool's periodic fsync (spool_sync = N ms). */
      if (q->spool_dirty_at != 0) {
        int64_t due = q->spool_dirty_at + q->cfg.spool_sync_ms;
        if (due <= now) {
          sync_now = 1;
          q->spool_dirty_at = 0;
        } else if (due < deadline) {
          deadline = due;
        }
      }
    }
    q->wake_pending = 0;
    pthread_mutex_unlock(&q->mu);
    if (sync_now) {
      char why[512];
      if (cio_spool_sync(q->spool, why, sizeof why) != 0) {
        /* Try again at the next interval; the operations are written (a process crash cannot
         * lose them), only a power cut could. */
        fprintf(stderr, "customerio.Queue: %s\n", why);
        pthread_mutex_lock(&q->mu);
        if (q->spool_dirty_at == 0) q->spool_dirty_at = queue_now_ms();
        pthread_mutex_unlock(&q->mu);
      }
    }

    for (i = 0; i < ntakes; i++) {
      queue_batch *b = queue_build(takes[i].chain, takes[i].n, takes[i].size, takes[i].bytes, takes[i].id);
      if (b == NULL) {
        /* Out of memory: put the operations back and try again in a moment. */
        pthread_mutex_lock(&q->mu);
        queue_untake_locked(q, takes[i].chain, takes[i].n, takes[i].bytes);
        pthread_mutex_unlock(&q->mu);
        oom = 1;
      } else {
        starts[nstarts++] = b;
      }
    }
    if (nstarts > 0 && queue_dns_wait(q, starts, nstarts, &deadline)) nstarts = 0;
    for (i = 0; i < nstarts; i++) {
      queue_slot *s = NULL;
      int k;
      for (k = 0; k < q->cfg.max_in_flight; k++)
        if (q->slots[k].batch == NULL) {
          s = &q->slots[k];
          break;
        }
      if (s == NULL || queue_slot_start(q, s, starts[i]) != 0) {
        queue_fail_batch(q, starts[i], "request", 0, "could not start the transfer (libcurl or out of memory)", NULL);
      } else {
        started++;
      }
    }

    if (curl_multi_perform(q->multi, &running) != CURLM_OK) running = 0;
    while ((msg = curl_multi_info_read(q->multi, &left)) != NULL) {
      if (msg->msg == CURLMSG_DONE) {
        queue_slot *s = NULL;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (s != NULL && s->batch != NULL) {
          queue_finish(q, s, rc);
          done++;
        }
      }
    }
    if (done > 0) continue;

    {
      int64_t wait = deadline - queue_now_ms();
      if (oom && wait > 100) wait = 100;
      if (wait < 0) wait = 0;
#if QUEUE_HAS_WAKEUP
      curl_multi_poll(q->multi, NULL, 0, (int)wait, NULL);
#else
      if (wait > 10) wait = 10;
      curl_multi_wait(q->multi, NULL, 0, (int)wait, NULL);
#endif
    }
    (void)started;
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Life cycle                                                                                */

static void queue_free_state(queue_state *q) {
  int i;
  queue_op *op = q->head;
  queue_batch *b = q->retry_list;
  queue_report *r = q->rep_head;
  if (cio_queue_forked(q)) {
    /* A fork() child's copy: its libcurl handles share the parent's sockets (cleaning them up
     * could send a TLS close_notify on the parent's connections) and its mutex may be locked
     * by the parent's worker. Leave it all: the memory goes with the process. */
    return;
  }
  while (op != NULL) {
    queue_op *next = op->next;
    free(op);
    op = next;
  }
  while (b != NULL) {
    queue_batch *next = b->next;
    queue_batch_free(b);
    b = next;
  }
  while (r != NULL) {
    queue_report *next = r->next;
    queue_report_free(r);
    r = next;
  }
  if (q->slots != NULL) {
    for (i = 0; i < q->cfg.max_in_flight; i++) {
      if (q->slots[i].batch != NULL && q->multi != NULL) curl_multi_remove_handle(q->multi, q->slots[i].easy);
      queue_batch_free(q->slots[i].batch);
      queue_slot_release(&q->slots[i]);
    }
    free(q->slots);
  }
  if (q->multi != NULL) curl_multi_cleanup(q->multi);
  cio_resolver_free(q->resolver); /* a lookup still running finishes on its own thread */
  free(q->dns_host);
  free(q->dns_port);
  cio_spool_close(q->spool);
  curl_slist_free_all(q->cfg.headers);
  free(q->cfg.spool_dir);
  free(q->cfg.url);
  free(q->cfg.ca_file);
  free(q->keys);
  pthread_cond_destroy(&q->progress);
  pthread_mutex_destroy(&q->mu);
  free(q);
}

static void queue_live_remove(queue_state *q) {
  queue_state **pp;
  pthread_mutex_lock(&queue_live_mu);
  for (pp = &queue_live; *pp != NULL; pp = &(*pp)->live_next)
    if (*pp == q) {
      *pp = q->live_next;
      break;
    }
  pthread_mutex_unlock(&queue_live_mu);
}

/* The monotonic time timeout_ms from now, for pthread_cond_timedwait. */
static void queue_deadline(struct timespec *until, int64_t timeout_ms) {
  clock_gettime(CLOCK_MONOTONIC, until);
  until->tv_sec += (time_t)(timeout_ms / 1000);
  until->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until->tv_nsec >= 1000000000L) {
    until->tv_sec++;
    until->tv_nsec -= 1000000000L;
  }
}

/* Wait until nothing is held or the deadline passes. Caller holds mu. Returns 1 when empty. */
static int queue_wait_locked(queue_state *q, int64_t timeout_ms) {
  struct timespec until;
  queue_deadline(&until, timeout_ms);
  while (q->queued + q->inflight > 0 && q->thread_started && !q->joined) {
    int rc = pthread_cond_timedwait(&q->progress, &q->mu, &until);
    if (rc == ETIMEDOUT) break;
  }
  return q->queued + q->inflight == 0;
}

/* Send everything, wait up to timeout_ms, give up on the rest, stop the worker. Idempotent. */
static int queue_shutdown(queue_state *q, int64_t timeout_ms) {
  int clean;
  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    pthread_mutex_unlock(&q->mu);
    return 1;
  }
  q->closed = 1;
  q->stopping = 1;
  q->flush_target = q->enqueued;
  queue_wake_locked(q);
  clean = queue_wait_locked(q, timeout_ms);
  if (!clean) q->abort_all = 1;
  q->wake_pending = 0;
  queue_wake_locked(q);
  pthread_mutex_unlock(&q->mu);
  if (q->thread_started && !q->joined) {
    pthread_join(q->thread, NULL);
    q->joined = 1;
  }
  if (q->spool != NULL) {
    /* Release the lane now (a new queue on the directory takes what is left in it). */
    cio_spool *sp = q->spool;
    pthread_mutex_lock(&q->mu);
    q->spool = NULL;
    pthread_mutex_unlock(&q->mu);
    cio_spool_close(sp);
  }
  queue_live_remove(q);
  return clean;
}

/* On exit() without lua_close (os.exit(code) in 5.4 by default): deliver what is held. */
static void queue_atexit(void) {
  for (;;) {
    queue_state *q;
    pthread_mutex_lock(&queue_live_mu);
    q = queue_live;
    while (q != NULL && cio_queue_forked(q)) q = q->live_next; /* the parent's, in a child */
    pthread_mutex_unlock(&queue_live_mu);
    if (q == NULL) break;
    queue_shutdown(q, q->cfg.close_timeout_ms);
    queue_live_remove(q);
    pthread_mutex_lock(&q->mu);
    if (q->reports > 0 || q->failed > 0)
      fprintf(stderr, "customerio.Queue: at exit, %lu operation(s) could not be delivered\n",
              (unsigned long)q->failed);
    pthread_mutex_unlock(&q->mu);
  }
}

/*
 * An atexit handler must not outlive its code: lua_close dlcloses C modules. Keep this
 * library loaded for the life of the process (RTLD_NODELETE) before registering one; if that
 * fails, do without the hook (lua_close still runs __gc, which flushes).
 */
static int queue_pin_library(void) {
  Dl_info info;
  if (dladdr((void *)&queue_atexit, &info) == 0 || info.dli_fname == NULL) return 0;
  return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != NULL;
}


/* ---------------------------------------------------------------------------------------- */
/* What the binding calls (queue_worker.h)                                                   */

static int queue_replay_record(void *ud, const char *key, size_t key_len, const char *data, size_t len);
static void queue_replay_problem(void *ud, const char *message);

cio_queue *cio_queue_alloc(void) {
  pthread_condattr_t attr;
  int rc;
  queue_state *q = (queue_state *)calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  if (pthread_mutex_init(&q->mu, NULL) != 0) {
    free(q);
    return NULL;
  }
  if (pthread_condattr_init(&attr) != 0) {
    pthread_mutex_destroy(&q->mu);
    free(q);
    return NULL;
  }
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(&q->progress, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_destroy(&q->mu);
    free(q);
    return NULL;
  }
  q->closed = 1; /* until the thread runs */
  return q;
}

cio_queue_config *cio_queue_config_of(cio_queue *q) {
  return &q->cfg;
}

const char *cio_queue_start(cio_queue *q) {
  int i, rc;
  q->rng = (uint64_t)queue_now_ms() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)q ^ (uint64_t)getpid();
  if (q->rng == 0) q->rng = 0x9E3779B97F4A7C15ULL;
  q->multi = curl_multi_init();
  if (q->multi == NULL) return "curl_multi_init failed";
  if (curl_multi_setopt(q->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)q->cfg.max_in_flight) != CURLM_OK ||
      curl_multi_setopt(q->multi, CURLMOPT_MAXCONNECTS, (long)q->cfg.max_in_flight) != CURLM_OK)
    return "curl_multi_setopt failed";
  q->slots = (queue_slot *)calloc((size_t)q->cfg.max_in_flight, sizeof(queue_slot));
  if (q->slots == NULL) return "out of memory";
  for (i = 0; i < q->cfg.max_in_flight; i++)
    if (queue_slot_init(q, &q->slots[i]) != 0) return "curl_easy_init/setopt failed";

  q->closed = 0;
  q->pid = getpid();
  if (q->cfg.spool_dir != NULL) {
    /* Open the spool and push what earlier processes left before the thread runs: those
     * operations come before any the caller enqueues, and a failure leaves nothing sent. */
    cio_spool_options o;
    o.max_bytes = q->cfg.max_bytes;
    o.segment_bytes = q->cfg.spool_segment_bytes;
    o.sync = q->cfg.spool_sync_ms >= 0;
    q->spool = cio_spool_open(q->cfg.spool_dir, &o, q->spool_err, sizeof q->spool_err);
    if (q->spool == NULL) {
      q->closed = 1;
      return q->spool_err;
    }
    if (cio_spool_replay(q->spool, queue_replay_record, queue_replay_problem, q, q->spool_err, sizeof q->spool_err) !=
        0) {
      q->closed = 1;
      return q->spool_err;
    }
  }
  rc = pthread_create(&q->thread, NULL, queue_worker, q);
  if (rc != 0) {
    q->closed = 1;
    return "pthread_create failed";
  }
  q->thread_started = 1;

  pthread_mutex_lock(&queue_live_mu);
  q->live_next = queue_live;
  queue_live = q;
  if ((!queue_atexit_done || !queue_atfork_done) && queue_pin_library()) {
    if (!queue_atexit_done && atexit(queue_atexit) == 0) queue_atexit_done = 1;
    if (!queue_atfork_done && pthread_atfork(NULL, NULL, queue_on_fork_child) == 0) queue_atfork_done = 1;
  }
  q->fork_gen = queue_fork_gen;
  pthread_mutex_unlock(&queue_live_mu);
  return NULL;
}

/* Push, with force: past max_events/max_bytes (a replay, already bounded by the spool). */
static cio_push_result queue_push(cio_queue *q, const char *data, size_t len, const char *key, size_t key_len,
                                  size_t *reports, int force) {
  queue_op *op;
  /* Before the mutex: in a fork() child it may be locked for ever by the parent's worker. */
  if (cio_queue_forked(q)) return CIO_PUSH_FORKED;
  if (len > q->cfg.op_bytes) {
    pthread_mutex_lock(&q->mu);
    q->rejected++;
    pthread_mutex_unlock(&q->mu);
    return CIO_PUSH_TOO_LARGE;
  }
  op = (queue_op *)malloc(sizeof *op + len);
  if (op == NULL) return CIO_PUSH_NOMEM;
  op->next = NULL;
  op->len = len;
  op->key = q->cfg.order != CIO_ORDER_NONE && key_len > 0 ? queue_key_hash(key, key_len) : 0;
  memcpy(op->data, data, len);
  op->at_ms = queue_now_ms();

  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    pthread_mutex_unlock(&q->mu);
    free(op);
    return CIO_PUSH_CLOSED;
  }
  if (!force && (q->queued + q->inflight + 1 > q->cfg.max_events ||
                 q->queued_bytes + q->inflight_bytes + len > q->cfg.max_bytes)) {
    q->dropped++;
    pthread_mutex_unlock(&q->mu);
    free(op);
    return CIO_PUSH_FULL;
  }
  op->sid = 0;
  if (q->spool != NULL) {
    /* In the page cache before the operation is queued; not queued when that fails. */
    int rc = cio_spool_append(q->spool, key, key_len, data, len, force, &op->sid, q->spool_err, sizeof q->spool_err);
    if (rc == CIO_SPOOL_OK && q->cfg.spool_sync_ms == 0 &&
        cio_spool_sync(q->spool, q->spool_err, sizeof q->spool_err) != 0) {
      /* "always": not durable, so not accepted; acknowledged so that no replay sends it. */
      cio_spool_ack(q->spool, op->sid);
      cio_spool_flush(q->spool);
      rc = CIO_SPOOL_IO;
    }
    if (rc != CIO_SPOOL_OK) {
      if (rc == CIO_SPOOL_FULL) q->dropped++;
      else q->spool_errors++;
      pthread_mutex_unlock(&q->mu);
      free(op);
      return rc == CIO_SPOOL_FULL ? CIO_PUSH_SPOOL_FULL : CIO_PUSH_SPOOL;
    }
    if (q->cfg.spool_sync_ms > 0 && q->spool_dirty_at == 0) {
      q->spool_dirty_at = op->at_ms;
      queue_wake_locked(q); /* the worker arms the fsync timer */
    }
  }
  {
    size_t before = queue_pending_size_locked(q);
    if (q->tail) q->tail->next = op;
    else q->head = op;
    q->tail = op;
    q->queued++;
    q->queued_bytes += len;
    op->seq = ++q->enqueued;
    /* Wake the worker only when it has something new to decide: an age timer to arm, a full
     * batch, an operation that can go while all others are held back. */
    if (q->stalled && !queue_key_held(q, op->key)) {
      q->stalled = 0;
      q->wake_pending = 0;
      queue_wake_locked(q);
    } else if (before == 0 ||
               (before < q->cfg.batch_bytes && queue_pending_size_locked(q) >= q->cfg.batch_bytes)) {
      queue_wake_locked(q);
    }
  }
  *reports = q->reports;
  pthread_mutex_unlock(&q->mu);
  return CIO_PUSH_OK;
}

cio_push_result cio_queue_push(cio_queue *q, const char *data, size_t len, const char *key, size_t key_len,
                               size_t *reports) {
  return queue_push(q, data, len, key, key_len, reports, 0);
}

const char *cio_queue_spool_error(cio_queue *q) {
  return q->spool_err;
}

/* cio_spool_replay's callbacks: a record left by an earlier process is pushed again (and so
 * appended to this queue's lane); a skipped tail becomes a report of kind "spool". */
static int queue_replay_record(void *ud, const char *key, size_t key_len, const char *data, size_t len) {
  queue_state *q = (queue_state *)ud;
  size_t reports;
  cio_push_result rc = queue_push(q, data, len, key, key_len, &reports, 1);
  if (rc == CIO_PUSH_TOO_LARGE) {
    /* Written by a queue with a larger op_bytes: this one cannot send it. Say so. */
    char message[160];
    snprintf(message, sizeof message, "spool: a replayed operation of %lu bytes is larger than op_bytes (%lu); dropped",
             (unsigned long)len, (unsigned long)q->cfg.op_bytes);
    queue_replay_problem(q, message);
    return 0;
  }
  if (rc != CIO_PUSH_OK) return -1;
  pthread_mutex_lock(&q->mu);
  q->replayed++;
  pthread_mutex_unlock(&q->mu);
  return 0;
}

static void queue_replay_problem(void *ud, const char *message) {
  queue_state *q = (queue_state *)ud;
  queue_report *r = queue_report_new("spool", 0, 0, message, NULL);
  pthread_mutex_lock(&q->mu);
  queue_report_push_locked(q, r, 0, "spool");
  pthread_mutex_unlock(&q->mu);
}

cio_queue_report *cio_queue_take_reports(cio_queue *q) {
  queue_report *r;
  if (cio_queue_forked(q)) return NULL;
  pthread_mutex_lock(&q->mu);
  r = q->rep_head;
  q->rep_head = q->rep_tail = NULL;
  q->reports = 0;
  pthread_mutex_unlock(&q->mu);
  return r;
}

void cio_queue_report_free(cio_queue_report *r) {
  queue_report_free(r);
}

int cio_queue_flush(cio_queue *q, int64_t timeout_ms, cio_flush_result *out) {
  uint64_t held;
  struct timespec until;
  cio_flush_result res;
  if (cio_queue_forked(q)) {
    if (out != NULL) out->sent = out->failed = out->pending = 0;
    return 0;
  }
  queue_deadline(&until, timeout_ms);
  pthread_mutex_lock(&q->mu);
  /* Every operation held now has seq <= enqueued; count how they finish from here on. */
  held = q->queued + q->inflight;
  q->flush_seq = q->enqueued;
  q->flush_sent = q->flush_failed = 0;
  q->flush_target = q->enqueued;
  q->wake_pending = 0;
  queue_wake_locked(q);
  while (q->flush_sent + q->flush_failed < held && q->thread_started && !q->joined) {
    if (pthread_cond_timedwait(&q->progress, &q->mu, &until) == ETIMEDOUT) break;
  }
  res.sent = q->flush_sent;
  res.failed = q->flush_failed;
  res.pending = held - res.sent - res.failed;
  q->flush_seq = 0;
  pthread_mutex_unlock(&q->mu);
  if (out != NULL) *out = res;
  return res.failed == 0 && res.pending == 0;
}

int cio_queue_shutdown(cio_queue *q, int64_t timeout_ms) {
  if (cio_queue_forked(q)) {
    q->closed = 1; /* the child's copy: no thread to stop, nothing of the parent's to send */
    return 0;
  }
  return queue_shutdown(q, timeout_ms);
}

int cio_queue_forked(cio_queue *q) {
  if (q->pid == 0) return 0;
  if (queue_atfork_done) return q->fork_gen != queue_fork_gen;
  return getpid() != q->pid;
}

void cio_queue_get_stats(cio_queue *q, cio_queue_stats *out) {
  int forked = cio_queue_forked(q); /* a child has one thread: read without the parent's lock */
  if (!forked) pthread_mutex_lock(&q->mu);
  out->enqueued = q->enqueued;
  out->sent = q->sent;
  out->failed = q->failed;
  out->dropped = q->dropped;
  out->rejected = q->rejected;
  out->retried = q->retried;
  out->requests = q->requests;
  out->batches = q->batches;
  out->replayed = q->replayed;
  out->spool_errors = q->spool_errors;
  out->spool_bytes = q->spool != NULL && !forked ? cio_spool_bytes(q->spool) : 0;
  out->queued = q->queued;
  out->in_flight = q->inflight;
  out->bytes = q->queued_bytes + q->inflight_bytes;
  out->reports = q->reports;
  out->closed = q->closed || forked;
  if (!forked) pthread_mutex_unlock(&q->mu);
}

int cio_queue_closed(cio_queue *q) {
  int closed;
  if (cio_queue_forked(q)) return 1;
  pthread_mutex_lock(&q->mu);
  closed = q->closed;
  pthread_mutex_unlock(&q->mu);
  return closed;
}

void cio_queue_free(cio_queue *q) {
  queue_free_state(q);
}

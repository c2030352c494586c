/*
 * queue.c - the background delivery queue behind customerio.Queue (plain Lua).
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

/***
 * The background delivery queue (worker thread + libcurl multi).
 * @module customerio.core
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "compat.h"

#define QUEUE_MT "customerio.queue"
#define QUEUE_BATCH_OPEN "{\"batch\":["
#define QUEUE_BATCH_CLOSE "]}"
#define QUEUE_BATCH_OVERHEAD 12 /* strlen(open) + strlen(close) */
#define QUEUE_MAX_RESPONSE (1024 * 1024)
#define QUEUE_MAX_SLOTS 64
#define QUEUE_IDLE_WAIT_MS 1000

#if LIBCURL_VERSION_NUM >= 0x074400 /* 7.68.0: curl_multi_poll and curl_multi_wakeup */
#define QUEUE_HAS_WAKEUP 1
#else
#define QUEUE_HAS_WAKEUP 0
#endif

typedef struct queue_op {
  struct queue_op *next;
  int64_t at_ms; /* monotonic time of enqueue (age trigger) */
  size_t len;
  char data[];
} queue_op;

/* A batch: its body, and where each operation sits in it (op i spans offs[i] .. offs[i+1]-1). */
typedef struct queue_batch {
  struct queue_batch *next; /* retry list */
  char *body;
  size_t len;
  size_t n;
  size_t *offs;
  size_t bytes;   /* sum of operation lengths, what max_bytes counts */
  int retries;    /* replays so far */
  double waited;  /* ms of backoff so far */
  int64_t due_ms; /* when a waiting retry may start */
} queue_batch;

/* Operations the worker could not deliver, waiting for Lua's poll(). */
typedef struct queue_report {
  struct queue_report *next;
  char *ops; /* op i spans offs[i] .. offs[i+1]-1 */
  size_t *offs;
  size_t n;
  const char *kind; /* static string */
  long status;
  int attempts;
  char *message; /* may be NULL */
  char *body;    /* response body, may be NULL */
  size_t body_len;
  char *detail; /* 207: JSON array of the error entries of this operation */
} queue_report;

typedef struct {
  char *data;
  size_t len, cap;
  int truncated;
} queue_buf;

typedef struct {
  CURL *easy;
  queue_batch *batch; /* NULL when the slot is free */
  struct curl_slist *retry_headers;
  queue_buf resp;
  char retry_after[64];
  char errbuf[CURL_ERROR_SIZE];
} queue_slot;

typedef struct queue_state {
  pthread_mutex_t mu;
  pthread_cond_t progress; /* signalled whenever operations finish */
  pthread_t thread;
  int thread_started, joined, closed, stopping, abort_all, wake_pending;

  /* Configuration, read-only once the thread runs. */
  char *url;
  char *ca_file;
  struct curl_slist *headers;
  long timeout_ms, connect_timeout_ms;
  size_t max_events, max_bytes, batch_bytes, op_max;
  int64_t flush_interval_ms, close_timeout_ms;
  int max_in_flight;
  int max_retries, respect_retry_after;
  double min_timeout, max_timeout, retry_after_max, max_total_backoff;
  unsigned char retry_status[600];

  /* Shared, under mu. */
  queue_op *head, *tail;
  size_t queued, queued_bytes;
  queue_batch *retry_list;
  size_t inflight, inflight_bytes; /* in slots or waiting to retry */
  queue_report *rep_head, *rep_tail;
  size_t reports;
  uint64_t enqueued, sent, failed, dropped, rejected, retried, requests, batches, taken, flush_target;

  /* Worker only. */
  CURLM *multi;
  queue_slot *slots;
  int active;
  uint64_t rng;

  struct queue_state *live_next; /* the process-wide list the atexit hook walks */
} queue_state;

typedef struct {
  queue_state *q;
} queue_ud;

static pthread_mutex_t queue_live_mu = PTHREAD_MUTEX_INITIALIZER;
static queue_state *queue_live = NULL;
static int queue_atexit_done = 0;

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

static int queue_buf_append(queue_buf *b, const char *p, size_t n, size_t limit) {
  if (b->len + n > limit) {
    b->truncated = 1;
    n = limit > b->len ? limit - b->len : 0;
    if (n == 0) return 0;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *grown;
    while (cap < b->len + n + 1) cap *= 2;
    grown = (char *)realloc(b->data, cap);
    if (grown == NULL) {
      b->truncated = 1;
      return -1;
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void queue_batch_free(queue_batch *b) {
  if (b == NULL) return;
  free(b->body);
  free(b->offs);
  free(b);
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
  if (resp != NULL && resp->len > 0) {
    r->body = queue_strdup(resp->data, resp->len);
    if (r->body != NULL) r->body_len = resp->len;
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
    r->ops = b->body;
    r->offs = b->offs;
    r->n = b->n;
    b->body = NULL;
    b->offs = NULL;
  }
  pthread_mutex_lock(&q->mu);
  q->failed += b->n;
  q->inflight -= b->n;
  q->inflight_bytes -= b->bytes;
  queue_report_push_locked(q, r, b->n, kind);
  pthread_cond_broadcast(&q->progress);
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
  return r;
}

/* 207: split the rejected operations (by batch_index) from the accepted ones. */
static void queue_partial(queue_state *q, queue_batch *b, const queue_slot *s, long status) {
  cJSON *root = s->resp.truncated ? NULL : cJSON_ParseWithLength(s->resp.data ? s->resp.data : "", s->resp.len);
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
    queue_report_push_locked(q, r, 0, "http");
  }
  q->sent += b->n - nbad;
  q->failed += nbad;
  q->inflight -= b->n;
  q->inflight_bytes -= b->bytes;
  while (first != NULL) {
    queue_report *next = first->next;
    first->next = NULL;
    queue_report_push_locked(q, first, 1, "http");
    first = next;
  }
  pthread_cond_broadcast(&q->progress);
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

#define QUEUE_EASY_SETOPT(e, opt, val)                                 \
  do {                                                                 \
    if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) return -1;   \
  } while (0)

static int queue_slot_init(queue_state *q, queue_slot *s) {
  CURL *e = curl_easy_init();
  if (e == NULL) return -1;
  s->easy = e;
  QUEUE_EASY_SETOPT(e, CURLOPT_NOSIGNAL, 1L);
  QUEUE_EASY_SETOPT(e, CURLOPT_PRIVATE, (void *)s);
  QUEUE_EASY_SETOPT(e, CURLOPT_ERRORBUFFER, s->errbuf);
  QUEUE_EASY_SETOPT(e, CURLOPT_WRITEFUNCTION, queue_on_body);
  QUEUE_EASY_SETOPT(e, CURLOPT_WRITEDATA, (void *)s);
  QUEUE_EASY_SETOPT(e, CURLOPT_HEADERFUNCTION, queue_on_header);
  QUEUE_EASY_SETOPT(e, CURLOPT_HEADERDATA, (void *)s);
  QUEUE_EASY_SETOPT(e, CURLOPT_URL, q->url);
  QUEUE_EASY_SETOPT(e, CURLOPT_POST, 1L);
  QUEUE_EASY_SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
  QUEUE_EASY_SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
  QUEUE_EASY_SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
  QUEUE_EASY_SETOPT(e, CURLOPT_ACCEPT_ENCODING, "gzip");
  QUEUE_EASY_SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
  QUEUE_EASY_SETOPT(e, CURLOPT_TCP_NODELAY, 1L);
  QUEUE_EASY_SETOPT(e, CURLOPT_TIMEOUT_MS, q->timeout_ms);
  QUEUE_EASY_SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, q->connect_timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
  QUEUE_EASY_SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  QUEUE_EASY_SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (q->ca_file != NULL) QUEUE_EASY_SETOPT(e, CURLOPT_CAINFO, q->ca_file);
  return 0;
}

static void queue_slot_release(queue_slot *s) {
  if (s->easy) curl_easy_cleanup(s->easy);
  s->easy = NULL;
  curl_slist_free_all(s->retry_headers);
  s->retry_headers = NULL;
  free(s->resp.data);
  s->resp.data = NULL;
  s->resp.len = s->resp.cap = 0;
}

/* Start sending batch b on slot s. Returns 0, or -1 (the batch is left to the caller). */
static int queue_slot_start(queue_state *q, queue_slot *s, queue_batch *b) {
  struct curl_slist *headers = q->headers;
  curl_slist_free_all(s->retry_headers);
  s->retry_headers = NULL;
  if (b->retries > 0) {
    struct curl_slist *h;
    char line[40];
    for (h = q->headers; h != NULL; h = h->next) {
      struct curl_slist *grown = curl_slist_append(s->retry_headers, h->data);
      if (grown == NULL) return -1;
      s->retry_headers = grown;
    }
    snprintf(line, sizeof line, "X-Retry-Count: %d", b->retries);
    headers = curl_slist_append(s->retry_headers, line);
    if (headers == NULL) return -1;
    s->retry_headers = headers;
  }
  s->resp.len = 0;
  s->resp.truncated = 0;
  s->retry_after[0] = '\0';
  s->errbuf[0] = '\0';
  if (curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
      curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len) != CURLE_OK ||
      curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, b->body) != CURLE_OK)
    return -1;
  if (curl_multi_add_handle(q->multi, s->easy) != CURLM_OK) return -1;
  s->batch = b;
  q->active++;
  return 0;
}

/* Milliseconds to wait before replay number n, Node's policy (Retry-After wins). */
static double queue_backoff(queue_state *q, int n, const char *retry_after) {
  double ms;
  if (q->respect_retry_after && retry_after != NULL && retry_after[0] != '\0') {
    const char *p = retry_after;
    double secs = -1;
    while (*p >= '0' && *p <= '9') p++;
    if (*p == '\0' && p != retry_after) {
      secs = strtod(retry_after, NULL);
    } else {
      time_t t = curl_getdate(retry_after, NULL);
      if (t != (time_t)-1) {
        secs = difftime(t, time(NULL));
        if (secs < 0) secs = 0;
      }
    }
    if (secs >= 0) {
      if (secs > q->retry_after_max) secs = q->retry_after_max;
      return secs * 1000;
    }
  }
  ms = (queue_random(q) + 1) * q->min_timeout;
  while (n-- > 0 && ms < q->max_timeout) ms *= 2;
  if (ms > q->max_timeout) ms = q->max_timeout;
  return ms;
}

static const char *queue_error_kind(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE: return "tls";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return "request";
    default: return "network";
  }
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
      q->sent += b->n;
      q->inflight -= b->n;
      q->inflight_bytes -= b->bytes;
      pthread_cond_broadcast(&q->progress);
      pthread_mutex_unlock(&q->mu);
      queue_batch_free(b);
      return;
    }
    kind = "http";
    retryable = status > 0 && status < 600 && q->retry_status[status];
    snprintf(message, sizeof message, "HTTP status %ld", status);
  } else {
    kind = queue_error_kind(rc);
    retryable = strcmp(kind, "network") == 0 || strcmp(kind, "timeout") == 0;
    snprintf(message, sizeof message, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
  }

  if (retryable && b->retries < q->max_retries) {
    double wait = queue_backoff(q, b->retries, rc == CURLE_OK ? s->retry_after : NULL);
    if (b->waited + wait <= q->max_total_backoff) {
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
  return q->queued == 0 ? 0 : QUEUE_BATCH_OVERHEAD + q->queued_bytes + q->queued - 1;
}

/* Whether the pending operations make a batch now. Caller holds mu. */
static int queue_ready_locked(queue_state *q, int64_t now) {
  if (q->queued == 0) return 0;
  if (q->stopping || q->taken < q->flush_target) return 1;
  if (queue_pending_size_locked(q) >= q->batch_bytes) return 1;
  return now - q->head->at_ms >= q->flush_interval_ms;
}

/* Detach the operations of the next batch from the pending FIFO. Caller holds mu. */
static queue_op *queue_take_locked(queue_state *q, size_t *n_out, size_t *size_out, size_t *bytes_out) {
  queue_op *first = q->head, *op = first, *last = NULL;
  size_t size = QUEUE_BATCH_OVERHEAD, n = 0, bytes = 0;
  while (op != NULL) {
    size_t add = op->len + (n > 0 ? 1 : 0);
    if (n > 0 && size + add > q->batch_bytes) break;
    size += add;
    bytes += op->len;
    n++;
    last = op;
    op = op->next;
  }
  q->head = op;
  if (op == NULL) q->tail = NULL;
  last->next = NULL;
  q->queued -= n;
  q->queued_bytes -= bytes;
  q->inflight += n;
  q->inflight_bytes += bytes;
  q->taken += n;
  q->batches++;
  *n_out = n;
  *size_out = size;
  *bytes_out = bytes;
  return first;
}

/* Put operations back at the head of the FIFO (no memory for their batch). Caller holds mu. */
static void queue_untake_locked(queue_state *q, queue_op *chain, size_t n, size_t bytes) {
  queue_op *last = chain;
  while (last->next != NULL) last = last->next;
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
static queue_batch *queue_build(queue_op *chain, size_t n, size_t size, size_t bytes) {
  queue_batch *b = (queue_batch *)calloc(1, sizeof *b);
  size_t at, i;
  queue_op *op;
  if (b == NULL) return NULL;
  b->body = (char *)malloc(size + 1);
  b->offs = (size_t *)malloc((n + 1) * sizeof(size_t));
  if (b->body == NULL || b->offs == NULL) {
    queue_batch_free(b);
    return NULL;
  }
  memcpy(b->body, QUEUE_BATCH_OPEN, QUEUE_BATCH_OVERHEAD - 2);
  at = QUEUE_BATCH_OVERHEAD - 2;
  for (op = chain, i = 0; op != NULL; op = op->next, i++) {
    if (i > 0) b->body[at++] = ',';
    b->offs[i] = at;
    memcpy(b->body + at, op->data, op->len);
    at += op->len;
  }
  b->offs[n] = at + 1;
  memcpy(b->body + at, QUEUE_BATCH_CLOSE, 2);
  at += 2;
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
  for (i = 0; i < q->max_in_flight; i++) {
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
  chain = q->queued > 0 ? queue_take_locked(q, &n, &size, &bytes) : NULL;
  pthread_mutex_unlock(&q->mu);
  while (retries != NULL) {
    queue_batch *next = retries->next;
    queue_fail_batch(q, retries, "closed", 0, "queue closed while the batch waited to be retried", NULL);
    retries = next;
  }
  while (chain != NULL) {
    queue_batch *b = queue_build(chain, n, size, bytes);
    if (b == NULL) {
      queue_op *op;
      pthread_mutex_lock(&q->mu);
      q->failed += n;
      q->inflight -= n;
      q->inflight_bytes -= bytes;
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
    chain = q->queued > 0 ? queue_take_locked(q, &n, &size, &bytes) : NULL;
    pthread_mutex_unlock(&q->mu);
  }
  pthread_mutex_lock(&q->mu);
  pthread_cond_broadcast(&q->progress);
  pthread_mutex_unlock(&q->mu);
}

static void *queue_worker(void *arg) {
  queue_state *q = (queue_state *)arg;
  for (;;) {
    int64_t now = queue_now_ms(), deadline = now + QUEUE_IDLE_WAIT_MS;
    int i, running = 0, started = 0, done = 0, oom = 0;
    queue_batch *starts[QUEUE_MAX_SLOTS];
    struct {
      queue_op *chain;
      size_t n, size, bytes;
    } takes[QUEUE_MAX_SLOTS];
    int nstarts = 0, ntakes = 0, free_slots = q->max_in_flight - q->active;
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
        takes[ntakes].chain = queue_take_locked(q, &takes[ntakes].n, &takes[ntakes].size, &takes[ntakes].bytes);
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
      if (q->queued > 0 && free_slots > 0) {
        int64_t due = q->head->at_ms + q->flush_interval_ms;
        if (due < deadline) deadline = due;
      }
    }
    q->wake_pending = 0;
    pthread_mutex_unlock(&q->mu);

    for (i = 0; i < ntakes; i++) {
      queue_batch *b = queue_build(takes[i].chain, takes[i].n, takes[i].size, takes[i].bytes);
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
    for (i = 0; i < nstarts; i++) {
      queue_slot *s = NULL;
      int k;
      for (k = 0; k < q->max_in_flight; k++)
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
    for (i = 0; i < q->max_in_flight; i++) {
      if (q->slots[i].batch != NULL && q->multi != NULL) curl_multi_remove_handle(q->multi, q->slots[i].easy);
      queue_batch_free(q->slots[i].batch);
      queue_slot_release(&q->slots[i]);
    }
    free(q->slots);
  }
  if (q->multi != NULL) curl_multi_cleanup(q->multi);
  curl_slist_free_all(q->headers);
  free(q->url);
  free(q->ca_file);
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

/* Wait until nothing is held or the deadline passes. Caller holds mu. Returns 1 when empty. */
static int queue_wait_locked(queue_state *q, int64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)(timeout_ms / 1000);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
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
  queue_live_remove(q);
  return clean;
}

/* On exit() without lua_close (os.exit(code) in 5.4 by default): deliver what is held. */
static void queue_atexit(void) {
  for (;;) {
    queue_state *q;
    pthread_mutex_lock(&queue_live_mu);
    q = queue_live;
    pthread_mutex_unlock(&queue_live_mu);
    if (q == NULL) break;
    queue_shutdown(q, q->close_timeout_ms);
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
/* Lua API                                                                                   */

static queue_state *queue_check(lua_State *L) {
  queue_ud *u = (queue_ud *)luaL_checkudata(L, 1, QUEUE_MT);
  if (u->q == NULL) luaL_error(L, "queue is released");
  return u->q;
}

static lua_Integer queue_opt_int(lua_State *L, int t, const char *name, lua_Integer def, lua_Integer min) {
  lua_Integer v = def;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    lua_Number n = luaL_checknumber(L, -1);
    if (n != n || n < (lua_Number)min || n > 9.0e15) luaL_error(L, "queue option %s out of range", name);
    v = (lua_Integer)n;
  }
  lua_pop(L, 1);
  return v;
}

static double queue_opt_num(lua_State *L, int t, const char *name, double def) {
  double v = def;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    v = (double)luaL_checknumber(L, -1);
    if (v != v || v < 0 || v > 9.0e15) luaL_error(L, "queue option %s out of range", name);
  }
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
    s = queue_strdup(v, len);
    if (s == NULL) luaL_error(L, "out of memory");
  } else if (required) {
    luaL_error(L, "queue option %s is required", name);
  }
  lua_pop(L, 1);
  return s;
}

/* Read the options into q (may raise: q is owned by the userdata already, __gc frees it). */
static void queue_read_options(lua_State *L, queue_state *q) {
  luaL_checktype(L, 1, LUA_TTABLE);
  q->url = queue_opt_str(L, 1, "url", 1);
  q->ca_file = queue_opt_str(L, 1, "ca_file", 0);
  q->timeout_ms = (long)queue_opt_int(L, 1, "timeout", 10000, 1);
  q->connect_timeout_ms = (long)queue_opt_int(L, 1, "connect_timeout", 10000, 1);
  q->max_events = (size_t)queue_opt_int(L, 1, "max_events", 100000, 1);
  q->max_bytes = (size_t)queue_opt_int(L, 1, "max_bytes", 64 * 1024 * 1024, 1);
  q->op_max = (size_t)queue_opt_int(L, 1, "op_max", 32 * 1024, 1);
  q->batch_bytes = (size_t)queue_opt_int(L, 1, "batch_bytes", 500 * 1024, 64);
  q->flush_interval_ms = (int64_t)queue_opt_int(L, 1, "flush_interval", 1000, 0);
  q->close_timeout_ms = (int64_t)queue_opt_int(L, 1, "close_timeout", 10000, 0);
  q->max_in_flight = (int)queue_opt_int(L, 1, "max_in_flight", 4, 1);
  if (q->max_in_flight > QUEUE_MAX_SLOTS) luaL_error(L, "queue option max_in_flight must be at most %d", QUEUE_MAX_SLOTS);
  if (q->op_max + QUEUE_BATCH_OVERHEAD > q->batch_bytes)
    luaL_error(L, "queue option batch_bytes must leave room for one operation of op_max bytes");

  /* The retry policy, already normalised by customerio.http.retry. */
  q->max_retries = 3;
  q->min_timeout = 200;
  q->max_timeout = 5000;
  q->respect_retry_after = 1;
  q->retry_after_max = 300;
  q->max_total_backoff = 30000;
  {
    static const int statuses[] = {408, 429, 500, 502, 503, 504, 522, 524};
    size_t i;
    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++) q->retry_status[statuses[i]] = 1;
  }
  lua_getfield(L, 1, "retry");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    q->max_retries = (int)queue_opt_int(L, t, "max_retries", q->max_retries, 0);
    q->min_timeout = queue_opt_num(L, t, "min_timeout", q->min_timeout);
    q->max_timeout = queue_opt_num(L, t, "max_timeout", q->max_timeout);
    q->retry_after_max = queue_opt_num(L, t, "retry_after_max", q->retry_after_max);
    q->max_total_backoff = queue_opt_num(L, t, "max_total_backoff", q->max_total_backoff);
    lua_getfield(L, t, "respect_retry_after");
    if (!lua_isnil(L, -1)) q->respect_retry_after = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "retry_statuses");
    if (lua_istable(L, -1)) {
      int s = lua_gettop(L), i, n = (int)lua_rawlen(L, s);
      memset(q->retry_status, 0, sizeof q->retry_status);
      for (i = 1; i <= n; i++) {
        lua_Integer code;
        lua_rawgeti(L, s, i);
        code = (lua_Integer)luaL_checknumber(L, -1);
        if (code > 0 && code < 600) q->retry_status[code] = 1;
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);

  /* Request headers: name -> value, checked like http.c does. */
  lua_getfield(L, 1, "headers");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      size_t nlen, vlen, i;
      const char *name, *value;
      char *line;
      struct curl_slist *grown;
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "queue headers must map strings to strings");
      name = lua_tolstring(L, -2, &nlen);
      value = lua_tolstring(L, -1, &vlen);
      for (i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 32 || c >= 127 || c == ':') luaL_error(L, "invalid header name");
      }
      for (i = 0; i < vlen; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') luaL_error(L, "header value contains CR, LF or NUL");
      if (nlen == 0) luaL_error(L, "invalid header name");
      line = (char *)malloc(nlen + vlen + 3);
      if (line == NULL) luaL_error(L, "out of memory");
      memcpy(line, name, nlen);
      if (vlen == 0) {
        line[nlen] = ';';
        line[nlen + 1] = '\0';
      } else {
        line[nlen] = ':';
        line[nlen + 1] = ' ';
        memcpy(line + nlen + 2, value, vlen);
        line[nlen + 2 + vlen] = '\0';
      }
      grown = curl_slist_append(q->headers, line);
      free(line);
      if (grown == NULL) luaL_error(L, "out of memory");
      q->headers = grown;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  {
    struct curl_slist *grown = curl_slist_append(q->headers, "Expect:");
    if (grown == NULL) luaL_error(L, "out of memory");
    q->headers = grown;
  }
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
 * Create a queue and start its worker thread.
 * @function queue_new
 * @tparam table opts `url` (the /api/v2/batch URL), `headers` (name -> value), `timeout`,
 * `connect_timeout` (ms), `ca_file`, `max_events`, `max_bytes`, `batch_bytes`, `op_max`,
 * `flush_interval` (ms), `max_in_flight`, `close_timeout` (ms, for __gc and exit), `retry`
 * (a customerio.http.retry policy), `reporter` (function(reports) called by __gc)
 * @return queue
 */
static int queue_new(lua_State *L) {
  queue_ud *u;
  queue_state *q;
  pthread_condattr_t attr;
  int i, rc;

  luaL_checktype(L, 1, LUA_TTABLE);
#if LUA_VERSION_NUM >= 504
  u = (queue_ud *)lua_newuserdatauv(L, sizeof *u, 1);
#else
  u = (queue_ud *)lua_newuserdata(L, sizeof *u);
#endif
  u->q = NULL;
  luaL_getmetatable(L, QUEUE_MT);
  lua_setmetatable(L, -2);

  q = (queue_state *)calloc(1, sizeof *q);
  if (q == NULL) return luaL_error(L, "out of memory");
  if (pthread_mutex_init(&q->mu, NULL) != 0) {
    free(q);
    return luaL_error(L, "pthread_mutex_init failed");
  }
  if (pthread_condattr_init(&attr) != 0) {
    pthread_mutex_destroy(&q->mu);
    free(q);
    return luaL_error(L, "pthread_condattr_init failed");
  }
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(&q->progress, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0) {
    pthread_mutex_destroy(&q->mu);
    free(q);
    return luaL_error(L, "pthread_cond_init failed");
  }
  q->closed = 1; /* until the thread runs: __gc only frees */
  u->q = q;      /* from here on __gc frees q */

  queue_read_options(L, q);
  lua_getfield(L, 1, "reporter");
  if (!lua_isnil(L, -1)) luaL_checktype(L, -1, LUA_TFUNCTION);
  queue_set_reporter(L, 2, lua_gettop(L)); /* the userdata is at 2, opts at 1 */
  lua_pop(L, 1);

  q->rng = (uint64_t)queue_now_ms() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)q ^ (uint64_t)getpid();
  if (q->rng == 0) q->rng = 0x9E3779B97F4A7C15ULL;
  q->multi = curl_multi_init();
  if (q->multi == NULL) return luaL_error(L, "curl_multi_init failed");
  if (curl_multi_setopt(q->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)q->max_in_flight) != CURLM_OK ||
      curl_multi_setopt(q->multi, CURLMOPT_MAXCONNECTS, (long)q->max_in_flight) != CURLM_OK)
    return luaL_error(L, "curl_multi_setopt failed");
  q->slots = (queue_slot *)calloc((size_t)q->max_in_flight, sizeof(queue_slot));
  if (q->slots == NULL) return luaL_error(L, "out of memory");
  for (i = 0; i < q->max_in_flight; i++)
    if (queue_slot_init(q, &q->slots[i]) != 0) return luaL_error(L, "curl_easy_init/setopt failed");

  q->closed = 0;
  rc = pthread_create(&q->thread, NULL, queue_worker, q);
  if (rc != 0) {
    q->closed = 1;
    return luaL_error(L, "pthread_create failed: %s", strerror(rc));
  }
  q->thread_started = 1;

  pthread_mutex_lock(&queue_live_mu);
  q->live_next = queue_live;
  queue_live = q;
  if (!queue_atexit_done && queue_pin_library() && atexit(queue_atexit) == 0) queue_atexit_done = 1;
  pthread_mutex_unlock(&queue_live_mu);
  return 1;
}

/***
 * Hand one encoded operation to the worker.
 * @function queue:push
 * @tparam string json the operation, JSON-encoded
 * @return true [, n] (n: reports waiting for poll) | nil, reason ("full", "too_large", "closed")
 */
static int queue_push(lua_State *L) {
  queue_state *q = queue_check(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  queue_op *op;
  size_t reports;
  luaL_argcheck(L, len > 0, 2, "empty operation");
  if (len > q->op_max) {
    pthread_mutex_lock(&q->mu);
    q->rejected++;
    pthread_mutex_unlock(&q->mu);
    lua_pushnil(L);
    lua_pushliteral(L, "too_large");
    return 2;
  }
  op = (queue_op *)malloc(sizeof *op + len);
  if (op == NULL) return luaL_error(L, "out of memory");
  op->next = NULL;
  op->len = len;
  memcpy(op->data, data, len);
  op->at_ms = queue_now_ms();

  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    pthread_mutex_unlock(&q->mu);
    free(op);
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (q->queued + q->inflight + 1 > q->max_events || q->queued_bytes + q->inflight_bytes + len > q->max_bytes) {
    q->dropped++;
    pthread_mutex_unlock(&q->mu);
    free(op);
    lua_pushnil(L);
    lua_pushliteral(L, "full");
    return 2;
  }
  {
    size_t before = queue_pending_size_locked(q);
    if (q->tail) q->tail->next = op;
    else q->head = op;
    q->tail = op;
    q->queued++;
    q->queued_bytes += len;
    q->enqueued++;
    /* Wake the worker only when it has something new to decide: an age timer to arm, a full batch. */
    if (before == 0 || (before < q->batch_bytes && queue_pending_size_locked(q) >= q->batch_bytes))
      queue_wake_locked(q);
  }
  reports = q->reports;
  pthread_mutex_unlock(&q->mu);
  lua_pushboolean(L, 1);
  if (reports == 0) return 1;
  lua_pushinteger(L, (lua_Integer)reports);
  return 2;
}

/* Push the waiting reports as a list (or nil when there are none). */
static int queue_push_reports(lua_State *L, queue_state *q) {
  queue_report *r, *next;
  int i = 0;
  pthread_mutex_lock(&q->mu);
  r = q->rep_head;
  q->rep_head = q->rep_tail = NULL;
  q->reports = 0;
  pthread_mutex_unlock(&q->mu);
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
    queue_report_free(r);
  }
  return 1;
}

/***
 * Take the reports of failed operations (to give to on_error on this thread).
 * @function queue:poll
 * @treturn table|nil list of `{kind, status, message, body, detail, attempts, ops = {json...}}`
 */
static int queue_poll(lua_State *L) {
  queue_state *q = queue_check(L);
  return queue_push_reports(L, q);
}

/***
 * Send every held operation now and wait until all are delivered or failed.
 * @function queue:flush
 * @tparam[opt] number timeout_ms default 10000
 * @treturn boolean true when nothing is held any more, false on timeout
 */
static int queue_flush(lua_State *L) {
  queue_state *q = queue_check(L);
  lua_Number timeout = luaL_optnumber(L, 2, 10000);
  int clean;
  luaL_argcheck(L, timeout >= 0, 2, "timeout must not be negative");
  pthread_mutex_lock(&q->mu);
  q->flush_target = q->enqueued;
  q->wake_pending = 0;
  queue_wake_locked(q);
  clean = queue_wait_locked(q, (int64_t)timeout);
  pthread_mutex_unlock(&q->mu);
  lua_pushboolean(L, clean);
  return 1;
}

/***
 * Flush (waiting up to timeout_ms), give up on what is left (it is reported), stop the worker.
 * @function queue:close
 * @tparam[opt] number timeout_ms default: the close_timeout option
 * @treturn boolean true when everything was delivered or reported before the timeout
 */
static int queue_close(lua_State *L) {
  queue_state *q = queue_check(L);
  lua_Number timeout = luaL_optnumber(L, 2, (lua_Number)q->close_timeout_ms);
  luaL_argcheck(L, timeout >= 0, 2, "timeout must not be negative");
  lua_pushboolean(L, queue_shutdown(q, (int64_t)timeout));
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
  queue_state *q = queue_check(L);
  lua_createtable(L, 0, 14);
  pthread_mutex_lock(&q->mu);
  queue_setcount(L, "enqueued", q->enqueued);
  queue_setcount(L, "sent", q->sent);
  queue_setcount(L, "failed", q->failed);
  queue_setcount(L, "dropped", q->dropped);
  queue_setcount(L, "rejected", q->rejected);
  queue_setcount(L, "retried", q->retried);
  queue_setcount(L, "queued", q->queued);
  queue_setcount(L, "in_flight", q->inflight);
  queue_setcount(L, "bytes", q->queued_bytes + q->inflight_bytes);
  queue_setcount(L, "requests", q->requests);
  queue_setcount(L, "batches", q->batches);
  queue_setcount(L, "reports", q->reports);
  lua_pushboolean(L, q->closed);
  lua_setfield(L, -2, "closed");
  pthread_mutex_unlock(&q->mu);
  return 1;
}

/* __gc and __close: close with the configured timeout, give leftovers to the reporter. */
static int queue_finalize(lua_State *L, int release) {
  queue_ud *u = (queue_ud *)luaL_checkudata(L, 1, QUEUE_MT);
  queue_state *q = u->q;
  if (q == NULL) return 0;
  queue_shutdown(q, q->close_timeout_ms);
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
    lua_pop(L, 1);
    pthread_mutex_lock(&q->mu);
    if (q->reports > 0)
      fprintf(stderr, "customerio.Queue: %lu report(s) of failed operations were never polled\n",
              (unsigned long)q->reports);
    pthread_mutex_unlock(&q->mu);
  }
  if (release) {
    u->q = NULL;
    queue_free_state(q);
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
  lua_pushfstring(L, "customerio.queue (%s)", u->q == NULL ? "released" : (u->q->closed ? "closed" : "open"));
  return 1;
}

static const luaL_Reg queue_methods[] = {
  {"push", queue_push},
  {"poll", queue_poll},
  {"flush", queue_flush},
  {"close", queue_close},
  {"stats", queue_stats},
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
  {NULL, NULL},
};

int queue_open(lua_State *L) {
  if (luaL_newmetatable(L, QUEUE_MT)) {
    luaL_setfuncs(L, queue_metamethods, 0);
    luaL_newlib(L, queue_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, queue_funcs, 0);
  return 0;
}

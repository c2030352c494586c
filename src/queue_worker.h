/*
 * queue_worker.h - the background delivery queue's worker (queue_worker.c): a pthread with its
 * own libcurl multi handle that packs encoded Track v2 operations into `{"batch":[...]}` bodies
 * and POSTs them. Its Lua binding is queue.c.
 *
 * This header and queue_worker.c do not include lua.h: the rule "the worker never touches the
 * Lua state" is checked by the compiler. Everything Lua must hear about goes through reports
 * that the binding turns into Lua values on the Lua thread.
 *
 * The worker has no defaults: the binding fills every field of cio_queue_config from what the
 * Lua layer resolved (customerio.queue for the sizes, customerio.http.retry for the policy).
 */
#ifndef CIO_QUEUE_WORKER_H
#define CIO_QUEUE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define CIO_QUEUE_BATCH_OPEN "{\"batch\":["
#define CIO_QUEUE_BATCH_CLOSE "]}"
/* Bytes a batch body adds around its operations (besides one comma between two of them). */
#define CIO_QUEUE_BATCH_OVERHEAD (sizeof CIO_QUEUE_BATCH_OPEN - 1 + sizeof CIO_QUEUE_BATCH_CLOSE - 1)
#define CIO_QUEUE_MAX_SLOTS 64

/* Failure kinds a policy may retry, as bits (cio_curl_error_kind's names). */
#define CIO_KIND_NETWORK 1u
#define CIO_KIND_TIMEOUT 2u
#define CIO_KIND_TLS 4u
#define CIO_KIND_REQUEST 8u

/* The retry policy, resolved by customerio.http.retry (the worker applies it, it does not choose it). */
typedef struct {
  int max_retries;
  int respect_retry_after;
  double min_timeout, max_timeout; /* ms */
  double retry_after_max;          /* s */
  double max_total_backoff;        /* ms */
  unsigned char retry_status[600]; /* 1: that status is retried */
  unsigned retry_kinds;            /* CIO_KIND_* bits */
} cio_retry_policy;

typedef struct {
  char *url;     /* owned: freed with the queue */
  char *ca_file; /* owned, may be NULL */
  struct curl_slist *headers; /* owned */
  long timeout_ms, connect_timeout_ms;
  size_t max_events, max_bytes, batch_bytes, op_bytes;
  int64_t flush_interval_ms, close_timeout_ms;
  int max_in_flight;
  int order; /* CIO_ORDER_*: how operations with the same ordering key are kept in order */
  cio_retry_policy retry;
  /* The durable spool (spool.c); spool_dir NULL: none. spool_sync_ms: 0 fsync before push
   * returns, > 0 the worker fsyncs at most that long after an append, < 0 never. max_bytes also
   * bounds the spool's unacknowledged bytes. */
  char *spool_dir; /* owned */
  int64_t spool_sync_ms;
  uint64_t spool_segment_bytes;
} cio_queue_config;

/* Ordering of the operations that share a key (the person or object they name):
 * NONE    any batch may carry any operation (the queue before ordering);
 * BATCH   at most one batch in flight (or waiting to retry) per key; a batch may carry several
 *         operations of one key, in enqueue order;
 * STRICT  as BATCH, and at most one operation per key in a batch. */
#define CIO_ORDER_NONE 0
#define CIO_ORDER_BATCH 1
#define CIO_ORDER_STRICT 2

/* Operations the worker could not deliver, waiting for the binding's poll(). */
typedef struct cio_queue_report {
  struct cio_queue_report *next;
  uint64_t batch; /* the batch the operations were sent in (reports of one 207 share it) */
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
} cio_queue_report;

typedef struct {
  uint64_t enqueued, sent, failed, dropped, rejected, retried, requests, batches;
  uint64_t replayed, spool_bytes, spool_errors; /* spool: operations replayed at start, unacknowledged bytes, refused writes */
  size_t queued, in_flight, bytes, reports;
  int closed;
} cio_queue_stats;

typedef struct cio_queue cio_queue;

typedef enum {
  CIO_PUSH_OK,
  CIO_PUSH_FULL,
  CIO_PUSH_TOO_LARGE,
  CIO_PUSH_CLOSED,
  CIO_PUSH_NOMEM,
  CIO_PUSH_FORKED, /* this process is a fork() child of the one that made the queue */
  CIO_PUSH_SPOOL_FULL, /* the spool holds max_bytes of unacknowledged operations */
  CIO_PUSH_SPOOL       /* the spool could not write it (cio_queue_spool_error says why); not queued */
} cio_push_result;

/* What became of the operations held when a flush started (see cio_queue_flush). */
typedef struct {
  uint64_t sent, failed, pending;
} cio_flush_result;

/* A queue that is not running yet; its config is empty (zeroed) for the binding to fill.
 * NULL when out of memory or a pthread object cannot be made. */
cio_queue *cio_queue_alloc(void);
cio_queue_config *cio_queue_config_of(cio_queue *q);

/* Start the worker with the config filled in. NULL, or why it could not start (the queue then
 * stays closed; cio_queue_free still frees it). With a spool_dir, the spool is opened first
 * and what earlier processes left in it is pushed (replayed) before this returns; corrupt
 * tails skipped become reports of kind "spool" without operations. */
const char *cio_queue_start(cio_queue *q);

/* Why the last push returned CIO_PUSH_SPOOL (the Lua thread's; valid until the next push). */
const char *cio_queue_spool_error(cio_queue *q);

/* Hand one encoded operation over (copied), with its ordering key (key_len 0: none; see
 * CIO_ORDER_*). *reports: reports waiting for poll. */
cio_push_result cio_queue_push(cio_queue *q, const char *data, size_t len, const char *key, size_t key_len,
                               size_t *reports);

/* Take every waiting report (a list, oldest first; NULL when none). */
cio_queue_report *cio_queue_take_reports(cio_queue *q);
void cio_queue_report_free(cio_queue_report *r);

/* Send everything held now; wait up to timeout_ms until every operation held at the call is
 * finished. 1 when all of them were accepted; 0 otherwise. *out (may be NULL): how many of
 * them were accepted (sent), failed (reported), or are still held (pending). */
int cio_queue_flush(cio_queue *q, int64_t timeout_ms, cio_flush_result *out);

/* Send everything, wait up to timeout_ms, give up on (report) the rest, stop the worker.
 * Idempotent. 1 when everything was delivered or reported in time. */
int cio_queue_shutdown(cio_queue *q, int64_t timeout_ms);

void cio_queue_get_stats(cio_queue *q, cio_queue_stats *out);
int cio_queue_closed(cio_queue *q);

/* 1 when the calling process is not the one that made the queue (a fork() child): the child
 * has no worker thread; every call but this one and cio_queue_free refuses or does nothing. */
int cio_queue_forked(cio_queue *q);

/* Free a queue that was shut down (or never started). */
void cio_queue_free(cio_queue *q);

/* The CIO_KIND_* bit of a kind name, 0 for an unknown one. */
unsigned cio_queue_kind_bit(const char *kind);

#endif

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
  cio_retry_policy retry;
} cio_queue_config;

/* Operations the worker could not deliver, waiting for the binding's poll(). */
typedef struct cio_queue_report {
  struct cio_queue_report *next;
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
  size_t queued, in_flight, bytes, reports;
  int closed;
} cio_queue_stats;

typedef struct cio_queue cio_queue;

typedef enum { CIO_PUSH_OK, CIO_PUSH_FULL, CIO_PUSH_TOO_LARGE, CIO_PUSH_CLOSED, CIO_PUSH_NOMEM } cio_push_result;

/* A queue that is not running yet; its config is empty (zeroed) for the binding to fill.
 * NULL when out of memory or a pthread object cannot be made. */
cio_queue *cio_queue_alloc(void);
cio_queue_config *cio_queue_config_of(cio_queue *q);

/* Start the worker with the config filled in. NULL, or why it could not start (the queue then
 * stays closed; cio_queue_free still frees it). */
const char *cio_queue_start(cio_queue *q);

/* Hand one encoded operation over (copied). *reports: reports waiting for poll. */
cio_push_result cio_queue_push(cio_queue *q, const char *data, size_t len, size_t *reports);

/* Take every waiting report (a list, oldest first; NULL when none). */
cio_queue_report *cio_queue_take_reports(cio_queue *q);
void cio_queue_report_free(cio_queue_report *r);

/* Send everything held now; wait up to timeout_ms. 1 when nothing is held any more. */
int cio_queue_flush(cio_queue *q, int64_t timeout_ms);

/* Send everything, wait up to timeout_ms, give up on (report) the rest, stop the worker.
 * Idempotent. 1 when everything was delivered or reported in time. */
int cio_queue_shutdown(cio_queue *q, int64_t timeout_ms);

void cio_queue_get_stats(cio_queue *q, cio_queue_stats *out);
int cio_queue_closed(cio_queue *q);

/* Free a queue that was shut down (or never started). */
void cio_queue_free(cio_queue *q);

/* The CIO_KIND_* bit of a kind name, 0 for an unknown one. */
unsigned cio_queue_kind_bit(const char *kind);

#endif

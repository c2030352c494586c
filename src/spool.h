/*
 * spool.h - the queue's durable spool (spool.c): an append-only log of encoded operations in a
 * directory, so that what a process enqueued survives its crash and is sent by the next one.
 *
 * No lua.h here (nor in spool.c): the thread queue's worker (queue_worker.c) uses it directly;
 * the nginx queue through its small Lua binding in queue.c (`core.spool_open`).
 *
 * On disk (docs/INTERNALS.md, "The spool"): a directory of lanes. A process holds one lane
 * (flock on lane-N.lock); a lane is segment files lane-N-S.log (a file header, then records:
 * 16-byte header {magic, key length, data length, CRC32C of header+key+data}, the key, the
 * data) and, for each, lane-N-S.ack (4-byte little-endian indexes of the records acknowledged).
 *
 * Records are numbered by the spool: 1, 2, 3, ... in append order within one open spool. Every
 * call is thread-safe (one internal mutex); cio_spool_sync does its fsync outside that mutex.
 */
#ifndef CIO_SPOOL_H
#define CIO_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct cio_spool cio_spool;

typedef struct {
  uint64_t max_bytes;     /* unacknowledged record bytes the lane may hold (append refuses past it) */
  uint64_t segment_bytes; /* roll to a new segment past this size */
  int sync;               /* 1: fsync a segment when it is rolled or closed, and the directory on create */
} cio_spool_options;

/* Results of cio_spool_append. */
#define CIO_SPOOL_OK 0
#define CIO_SPOOL_FULL 1 /* max_bytes would be passed: nothing written */
#define CIO_SPOOL_IO 2   /* an I/O error (message in err): nothing left in the log */

/* A record left by an earlier process (cio_spool_replay): return 0 to go on, non-zero to stop
 * (the replay then fails and the old segments are kept). */
typedef int (*cio_spool_record_fn)(void *ud, const char *key, size_t key_len, const char *data, size_t len);
/* Something skipped (a corrupt or truncated tail): one message naming file, offset, bytes. */
typedef void (*cio_spool_problem_fn)(void *ud, const char *message);

/* Open (create) the directory and take a lane: every unlocked lane is taken, the lowest kept
 * as this spool's, the others (orphans) replayed into it. NULL with a message in err. */
cio_spool *cio_spool_open(const char *dir, const cio_spool_options *o, char *err, size_t errlen);

/* Hand every unacknowledged record of the lanes taken at open (left by earlier processes) to
 * fn, oldest first per lane, then (once fn took them all, and they were appended again to this
 * spool by the caller) sync this spool and delete those old files. 0, or -1 with err. */
int cio_spool_replay(cio_spool *s, cio_spool_record_fn fn, cio_spool_problem_fn problem, void *ud, char *err,
                     size_t errlen);

/* Append one record (in the page cache, through a shared mapping, before it returns). force: ignore max_bytes (a
 * replay). *id: its number. CIO_SPOOL_OK, CIO_SPOOL_FULL, CIO_SPOOL_IO (err filled). */
int cio_spool_append(cio_spool *s, const char *key, size_t key_len, const char *data, size_t len, int force,
                     uint64_t *id, char *err, size_t errlen);

/* Record id is acknowledged (delivered, or refused for good): buffered until cio_spool_flush. */
void cio_spool_ack(cio_spool *s, uint64_t id);
/* Write the buffered acknowledgements and delete the segments no longer needed. */
void cio_spool_flush(cio_spool *s);

/* fsync what was appended since the last sync. 0, or -1 with err. */
int cio_spool_sync(cio_spool *s, char *err, size_t errlen);

/* Unacknowledged record bytes in this spool's lane. */
uint64_t cio_spool_bytes(cio_spool *s);
/* The lane's name (for messages). */
const char *cio_spool_lane(cio_spool *s);

/* Flush acknowledgements, sync (when o->sync), delete what is no longer needed, release the
 * lane (its lock file goes when no segment is left), free. NULL is fine. */
void cio_spool_close(cio_spool *s);

#endif

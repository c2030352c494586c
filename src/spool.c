/*
 * spool.c - the queue's durable spool: an append-only log of encoded operations in a
 * directory (see spool.h for the API, docs/queue.md for what it guarantees, docs/INTERNALS.md
 * for the format). No lua.h: the thread queue's worker uses it directly; the nginx queue
 * through the Lua binding in queue.c (`core.spool_open`).
 *
 * Why this shape:
 *   - one lane per process (flock on lane-N.lock): two processes never append to one file, and
 *     a lane whose lock is free belongs to nobody (its process died or closed its queue);
 *   - records are copied into a shared mapping of the segment file before enqueue returns: a
 *     process crash (SIGKILL, OOM) cannot lose them (they are in the page cache, as after a
 *     write(2), without a system call per record); the file is allocated ahead (posix_fallocate,
 *     64 KiB then doubling) so a full disk is an error of the append that needs room, never a
 *     SIGBUS; a record's magic is stored last, so a record cut by the crash reads as the end
 *     of the log (a zero magic); fsync is the owner's policy;
 *   - each record carries a CRC32C over its header, key and data: a tail cut by a crash or a
 *     power cut, or garbage, is detected and never replayed;
 *   - acknowledgements are appended to a side file without fsync: a lost one only means a
 *     replay of an operation that was delivered (events carry their ULID, so it counts once);
 *   - a replay appends the old records to this spool's own lane (and syncs it) before it
 *     deletes the old files, so a crash during a replay can duplicate, never lose.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "spool.h"

#define SPOOL_FILE_MAGIC "CIOSPL1\n" /* first 8 bytes of a segment */
#define SPOOL_FILE_HEADER 8
#define SPOOL_REC_MAGIC 0x52534943u /* "CISR" little-endian */
#define SPOOL_REC_HEADER 16
#define SPOOL_MAX_FIELD (64u * 1024 * 1024) /* a key or data longer than this is corrupt */
#define SPOOL_ACKED 0x80000000u             /* in seg->sizes: the record is acknowledged */
#define SPOOL_NAME 64
#define SPOOL_CHUNK (64u * 1024) /* the segment file grows (posix_fallocate) by at least this much */

typedef struct spool_seg {
  struct spool_seg *next;
  unsigned no;
  uint64_t first, count, acked; /* records first .. first+count-1 */
  uint32_t *sizes;              /* bytes of each record, | SPOOL_ACKED once acknowledged */
  size_t cap;
  uint32_t *pend; /* acknowledged indexes not yet written to the .ack file */
  size_t npend, pend_cap;
  int ack_fd; /* -1 until the first acknowledgement is written */
} spool_seg;

/* A lane taken for replay (not this spool's own): its lock is held until its files are gone. */
typedef struct spool_lane {
  struct spool_lane *next;
  unsigned no;
  int lock_fd;
} spool_lane;

struct cio_spool {
  pthread_mutex_t mu;
  char *dir;
  int dirfd, lock_fd;
  unsigned lane;
  char lane_name[SPOOL_NAME];
  cio_spool_options o;
  uint32_t crc[256];
  int hw_crc; /* the CPU has SSE4.2's crc32 */
  unsigned char *map; /* cur's file, mapped shared (map_size bytes, alloc of them allocated on disk) */
  size_t map_size, alloc;
  spool_seg *segs, *cur; /* cur: the segment appended to (the last one), NULL until the first append */
  int fd;                /* cur's file, -1 when none (or after a write left it unusable) */
  uint64_t size;         /* bytes in cur's file */
  int dirty;             /* appended since the last sync */
  uint64_t next_id, unacked;
  unsigned next_seg, old_max; /* old_max: own segments up to this one are an earlier process's */
  int replayed;
};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                             */


static void spool_crc_init(uint32_t *t) {
  uint32_t i, k, c;
  for (i = 0; i < 256; i++) {
    c = i;
    for (k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1; /* CRC32C (Castagnoli) */
    t[i] = c;
  }
}

static uint32_t spool_crc_table(const uint32_t *t, uint32_t crc, const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  crc = ~crc;
  while (n--) crc = t[(crc ^ *b++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The SSE4.2 crc32 instruction computes the same CRC32C, 8 bytes at a time (used when the CPU
 * has it: __builtin_cpu_supports; the table otherwise). */
__attribute__((target("sse4.2"))) static uint32_t spool_crc_hw(uint32_t crc, const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t c = ~crc;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, b, 8);
    c = __builtin_ia32_crc32di(c, v);
    b += 8;
    n -= 8;
  }
  while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *b++);
  return ~(uint32_t)c;
}
#define SPOOL_HAS_HW_CRC 1
#else
#define SPOOL_HAS_HW_CRC 0
#endif

static uint32_t spool_crc(const cio_spool *s, uint32_t crc, const void *p, size_t n);

/* CRC32C, by the instruction or the table. */
static uint32_t spool_crc(const cio_spool *s, uint32_t crc, const void *p, size_t n) {
#if SPOOL_HAS_HW_CRC
  if (s->hw_crc) return spool_crc_hw(crc, p, n);
#endif
  return spool_crc_table(s->crc, crc, p, n);
}

static void spool_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t spool_get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void spool_seg_name(char *buf, unsigned lane, unsigned seg, const char *ext) {
  snprintf(buf, SPOOL_NAME, "lane-%u-%010u.%s", lane, seg, ext);
}

static void spool_error(cio_spool *s, char *err, size_t errlen, const char *what, const char *name, int e) {
  if (err == NULL || errlen == 0) return;
  snprintf(err, errlen, "spool: %s %s/%s: %s", what, s->dir, name ? name : "", strerror(e));
}

/* Write all of iov (retrying short writes and EINTR). 0, or -1 with errno. */
static int spool_writev_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

static int spool_fsync(int fd) {
  int rc;
  do rc = fdatasync(fd);
  while (rc != 0 && errno == EINTR);
  return rc;
}

/* Read a whole file (at most limit bytes are expected). NULL with errno; *len its size. */
static unsigned char *spool_read_file(int dirfd, const char *name, size_t *len) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  struct stat st;
  unsigned char *buf;
  size_t got = 0;
  if (fd < 0) return NULL;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  buf = (unsigned char *)malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    close(fd);
    errno = ENOMEM;
    return NULL;
  }
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      errno = e;
      return NULL;
    }
    if (r == 0) break; /* shrank meanwhile: take what is there */
    got += (size_t)r;
  }
  close(fd);
  *len = got;
  return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* Lanes                                                                                     */

/* Lock lane `no`: its lock fd, 0 when another process holds it, -1 with errno on an error.
 * The lock file may be unlinked by its last holder between our open and flock: then the lock
 * we got is on a dead inode, and we try again. */
static int spool_lock_lane(int dirfd, unsigned no) {
  char name[SPOOL_NAME];
  int tries;
  snprintf(name, sizeof name, "lane-%u.lock", no);
  for (tries = 0; tries < 100; tries++) {
    struct stat a, b;
    int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      close(fd);
      if (e == EWOULDBLOCK || e == EAGAIN) return 0;
      if (e == EINTR) continue;
      errno = e;
      return -1;
    }
    if (fstat(fd, &a) == 0 && fstatat(dirfd, name, &b, 0) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
      return fd;
    close(fd);
  }
  errno = EAGAIN;
  return -1;
}

/* The lane and segment numbers a file name carries (seg 0: a lock file). 0 when not ours. */
static int spool_parse_name(const char *name, unsigned *lane, unsigned *seg) {
  int n = 0;
  *seg = 0;
  if (sscanf(name, "lane-%u.lock%n", lane, &n) == 1 && n > 0 && name[n] == '\0') return 1;
  n = 0;
  if (sscanf(name, "lane-%u-%u.%n", lane, seg, &n) == 2 && n > 0 &&
      (strcmp(name + n, "log") == 0 || strcmp(name + n, "ack") == 0))
    return *seg > 0 ? 2 : 0;
  return 0;
}

typedef struct {
  unsigned lane, seg;
} spool_file;

static int spool_file_cmp(const void *a, const void *b) {
  const spool_file *x = (const spool_file *)a, *y = (const spool_file *)b;
  if (x->lane != y->lane) return x->lane < y->lane ? -1 : 1;
  if (x->seg != y->seg) return x->seg < y->seg ? -1 : 1;
  return 0;
}

/* Every lock file and segment (.log or .ack) in the directory: lane, seg (0 for a lock). */
static int spool_scan(cio_spool *s, spool_file **out, size_t *n_out, char *err, size_t errlen) {
  int fd = dup(s->dirfd);
  DIR *d;
  struct dirent *e;
  spool_file *list = NULL;
  size_t n = 0, cap = 0;
  *out = NULL;
  *n_out = 0;
  if (fd < 0 || (d = fdopendir(fd)) == NULL) {
    int er = errno;
    if (fd >= 0) close(fd);
    spool_error(s, err, errlen, "cannot read directory", "", er);
    return -1;
  }
  rewinddir(d);
  while ((e = readdir(d)) != NULL) {
    unsigned lane, seg;
    if (!spool_parse_name(e->d_name, &lane, &seg)) continue;
    if (n == cap) {
      size_t c = cap ? cap * 2 : 32;
      spool_file *l = (spool_file *)realloc(list, c * sizeof *l);
      if (l == NULL) {
        free(list);
        closedir(d);
        spool_error(s, err, errlen, "cannot read directory", "", ENOMEM);
        return -1;
      }
      list = l;
      cap = c;
    }
    list[n].lane = lane;
    list[n].seg = seg;
    n++;
  }
  closedir(d);
  if (n > 1) qsort(list, n, sizeof *list, spool_file_cmp);
  *out = list;
  *n_out = n;
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Segments                                                                                  */

static void spool_seg_free(spool_seg *g) {
  if (g == NULL) return;
  if (g->ack_fd >= 0) close(g->ack_fd);
  free(g->sizes);
  free(g->pend);
  free(g);
}

static void spool_unlink_seg(cio_spool *s, unsigned lane, unsigned seg) {
  char name[SPOOL_NAME];
  spool_seg_name(name, lane, seg, "ack");
  unlinkat(s->dirfd, name, 0);
  spool_seg_name(name, lane, seg, "log");
  unlinkat(s->dirfd, name, 0);
}

/* Stop writing to the current segment: unmap it, cut the file to its records (it was
 * allocated ahead), sync it when the policy says so. Caller holds mu. */
static void spool_seal(cio_spool *s) {
  if (s->fd < 0) return;
  if (s->map != NULL) munmap(s->map, s->map_size);
  s->map = NULL;
  if (ftruncate(s->fd, (off_t)s->size) != 0) {
    /* The tail stays zeros: a replay reads that as the end of the records. */
  }
  /* A failed fsync here is not reported: the records are written (a process crash cannot lose
   * them) and queued already; only a power cut could, as between two periodic fsyncs. */
  if (s->o.sync) spool_fsync(s->fd);
  close(s->fd);
  s->fd = -1;
}

/* Make room for `need` bytes in the current segment's file (allocated on disk, so that a
 * store into the mapping never meets a full disk). 0, or -1 with errno. Caller holds mu. */
static int spool_grow(cio_spool *s, size_t need) {
  size_t want;
  int rc;
  if (need <= s->alloc) return 0;
  want = s->alloc ? s->alloc * 2 : SPOOL_CHUNK;
  if (want < need) want = need;
  if (want > s->map_size) want = s->map_size;
  do rc = posix_fallocate(s->fd, 0, (off_t)want);
  while (rc == EINTR);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  s->alloc = want;
  return 0;
}

/* Seal the current segment and start a new one with room for a record of rec bytes. Caller
 * holds mu. 0, or -1 with err. */
static int spool_roll(cio_spool *s, uint64_t rec, char *err, size_t errlen) {
  char name[SPOOL_NAME];
  spool_seg *g;
  int fd;
  void *map;
  size_t size = s->o.segment_bytes > SPOOL_FILE_HEADER + rec ? (size_t)s->o.segment_bytes : SPOOL_FILE_HEADER + rec;
  spool_seal(s);
  g = (spool_seg *)calloc(1, sizeof *g);
  if (g == NULL) {
    spool_error(s, err, errlen, "cannot create segment in", "", ENOMEM);
    return -1;
  }
  g->ack_fd = -1;
  g->no = s->next_seg++;
  g->first = s->next_id;
  spool_seg_name(name, s->lane, g->no, "log");
  fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    spool_error(s, err, errlen, "cannot create", name, errno);
    free(g);
    return -1;
  }
  /* Mapped shared: a store into the mapping is in the page cache, as a write(2) would be
   * (a process crash cannot lose it), without a system call per record. */
  map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    spool_error(s, err, errlen, "cannot map", name, errno);
    close(fd);
    unlinkat(s->dirfd, name, 0);
    free(g);
    return -1;
  }
  s->fd = fd;
  s->map = (unsigned char *)map;
  s->map_size = size;
  s->alloc = 0;
  s->size = 0;
  if (spool_grow(s, SPOOL_FILE_HEADER + rec) != 0) {
    spool_error(s, err, errlen, "cannot allocate", name, errno);
    munmap(map, size);
    s->map = NULL;
    close(fd);
    s->fd = -1;
    unlinkat(s->dirfd, name, 0);
    free(g);
    return -1;
  }
  memcpy(s->map, SPOOL_FILE_MAGIC, SPOOL_FILE_HEADER);
  if (s->o.sync) spool_fsync(s->dirfd); /* the new file's name survives a power cut */
  if (s->cur) s->cur->next = g;
  else s->segs = g;
  s->cur = g;
  s->size = SPOOL_FILE_HEADER;
  return 0;
}

/* The segment holding record id, or NULL. Caller holds mu. */
static spool_seg *spool_seg_of(cio_spool *s, uint64_t id) {
  spool_seg *g;
  for (g = s->segs; g != NULL; g = g->next)
    if (id >= g->first && id < g->first + g->count) return g;
  return NULL;
}

/* Write g's buffered acknowledgements (errors are ignored: a lost acknowledgement only means
 * a replay of a delivered operation). Caller holds mu. */
static void spool_write_acks(cio_spool *s, spool_seg *g) {
  unsigned char buf[4 * 256];
  size_t i = 0;
  if (g->npend == 0) return;
  if (g->ack_fd < 0) {
    char name[SPOOL_NAME];
    spool_seg_name(name, s->lane, g->no, "ack");
    g->ack_fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
  while (g->ack_fd >= 0 && i < g->npend) {
    size_t k = 0;
    struct iovec iov;
    while (k < 256 && i < g->npend) spool_put32(buf + 4 * k++, g->pend[i++]);
    iov.iov_base = buf;
    iov.iov_len = 4 * k;
    if (spool_writev_all(g->ack_fd, &iov, 1) != 0) break;
  }
  g->npend = 0;
}

/* Delete every segment but the current one whose records are all acknowledged. Caller holds mu. */
static void spool_reap(cio_spool *s) {
  spool_seg **pp = &s->segs;
  while (*pp != NULL) {
    spool_seg *g = *pp;
    if (g != s->cur && g->acked == g->count) {
      *pp = g->next;
      spool_unlink_seg(s, s->lane, g->no);
      spool_seg_free(g);
    } else {
      pp = &g->next;
    }
  }
}

/* ---------------------------------------------------------------------------------------- */
/* The API (spool.h)                                                                         */

cio_spool *cio_spool_open(const char *dir, const cio_spool_options *o, char *err, size_t errlen) {
  cio_spool *s;
  spool_file *files = NULL;
  size_t n = 0, i;
  unsigned max_lane = 0, lane;
  int have_lane = 0;

  if (err && errlen) err[0] = '\0';
  s = (cio_spool *)calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(dir)) == NULL) {
    free(s);
    if (err && errlen) snprintf(err, errlen, "spool: out of memory");
    return NULL;
  }
  s->o = *o;
  s->fd = s->lock_fd = -1;
  s->next_id = 1;
  spool_crc_init(s->crc);
#if SPOOL_HAS_HW_CRC
  __builtin_cpu_init();
  s->hw_crc = __builtin_cpu_supports("sse4.2");
#endif
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "spool: cannot create directory %s: %s", dir, strerror(errno));
    free(s->dir);
    free(s);
    return NULL;
  }
  s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s->dirfd < 0) {
    snprintf(err, errlen, "spool: cannot open directory %s: %s", dir, strerror(errno));
    free(s->dir);
    free(s);
    return NULL;
  }
  if (faccessat(s->dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
    snprintf(err, errlen, "spool: cannot write to directory %s: %s", dir, strerror(errno));
    close(s->dirfd);
    free(s->dir);
    free(s);
    return NULL;
  }
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    snprintf(err, errlen, "spool: cannot create a mutex");
    close(s->dirfd);
    free(s->dir);
    free(s);
    return NULL;
  }
  if (spool_scan(s, &files, &n, err, errlen) != 0) goto fail;
  /* The lowest lane nobody holds is ours (its old segments are replayed first). */
  for (i = 0; i < n; i++) {
    int fd;
    if (files[i].lane > max_lane) max_lane = files[i].lane;
    if (have_lane || (i > 0 && files[i].lane == files[i - 1].lane)) continue;
    fd = spool_lock_lane(s->dirfd, files[i].lane);
    if (fd < 0) {
      snprintf(err, errlen, "spool: cannot lock lane-%u.lock in %s: %s", files[i].lane, dir, strerror(errno));
      goto fail;
    }
    if (fd > 0) {
      s->lock_fd = fd;
      s->lane = files[i].lane;
      have_lane = 1;
    }
  }
  for (lane = max_lane + 1; !have_lane; lane++) {
    int fd = spool_lock_lane(s->dirfd, lane);
    if (fd < 0) {
      snprintf(err, errlen, "spool: cannot create lane-%u.lock in %s: %s", lane, dir, strerror(errno));
      goto fail;
    }
    if (fd > 0) {
      s->lock_fd = fd;
      s->lane = lane;
      have_lane = 1;
    }
  }
  for (i = 0; i < n; i++)
    if (files[i].lane == s->lane && files[i].seg > s->old_max) s->old_max = files[i].seg;
  s->next_seg = s->old_max + 1;
  snprintf(s->lane_name, sizeof s->lane_name, "lane-%u", s->lane);
  free(files);
  return s;
fail:
  free(files);
  if (s->lock_fd >= 0) close(s->lock_fd);
  pthread_mutex_destroy(&s->mu);
  close(s->dirfd);
  free(s->dir);
  free(s);
  return NULL;
}

/* Replay one old segment: every valid record not acknowledged goes to fn. A corrupt or
 * truncated part ends the segment, with one problem report. 0, or -1 when fn stopped or the
 * file could not be read (err filled). */
static int spool_replay_seg(cio_spool *s, unsigned lane, unsigned seg, cio_spool_record_fn fn,
                            cio_spool_problem_fn problem, void *ud, char *err, size_t errlen) {
  char name[SPOOL_NAME], msg[512];
  unsigned char *buf, *acks = NULL, *done = NULL;
  size_t len = 0, alen = 0, off, count = 0, i;
  const char *why = NULL;
  int rc = 0;

  spool_seg_name(name, lane, seg, "log");
  buf = spool_read_file(s->dirfd, name, &len);
  if (buf == NULL) {
    if (errno == ENOENT) return 0; /* an .ack without its .log */
    spool_error(s, err, errlen, "cannot read", name, errno);
    return -1;
  }
  /* Pass 1: how many valid records, and where the valid part ends. */
  for (off = 0; off < len && buf[off] == 0; off++) {
  }
  if (off == len) {
    free(buf);
    return 0; /* allocated, then the process died before the file header: nothing in it */
  }
  if (len < SPOOL_FILE_HEADER || memcmp(buf, SPOOL_FILE_MAGIC, SPOOL_FILE_HEADER) != 0) {
    why = len < SPOOL_FILE_HEADER ? "truncated file header" : "not a spool segment (bad file header)";
    off = 0;
  } else {
    off = SPOOL_FILE_HEADER;
    while (off < len) {
      uint32_t klen, dlen;
      /* A zero magic is the end: the rest was allocated ahead, or a record whose write had
       * not finished (the writer stores its magic last) when the process died. */
      if (len - off >= 4 && spool_get32(buf + off) == 0) break;
      if (len - off < SPOOL_REC_HEADER) {
        why = "truncated record header";
        break;
      }
      klen = spool_get32(buf + off + 4);
      dlen = spool_get32(buf + off + 8);
      if (spool_get32(buf + off) != SPOOL_REC_MAGIC) {
        why = "bad record magic";
        break;
      }
      if (klen > SPOOL_MAX_FIELD || dlen == 0 || dlen > SPOOL_MAX_FIELD) {
        why = "record length out of range";
        break;
      }
      if (len - off - SPOOL_REC_HEADER < (size_t)klen + dlen) {
        why = "truncated record";
        break;
      }
      {
        uint32_t c = spool_crc(s, 0, buf + off, 12);
        c = spool_crc(s, c, buf + off + SPOOL_REC_HEADER, (size_t)klen + dlen);
        if (c != spool_get32(buf + off + 12)) {
          why = "CRC mismatch";
          break;
        }
      }
      off += SPOOL_REC_HEADER + klen + dlen;
      count++;
    }
  }
  if (why != NULL && problem != NULL) {
    snprintf(msg, sizeof msg,
             "spool: %s/%s: %s at offset %lu; %lu byte(s) skipped (never replayed), the %lu record(s) before it kept",
             s->dir, name, why, (unsigned long)off, (unsigned long)(len - off), (unsigned long)count);
    problem(ud, msg);
  }
  /* Which records were acknowledged. */
  if (count > 0) {
    done = (unsigned char *)calloc(count, 1);
    if (done == NULL) {
      free(buf);
      spool_error(s, err, errlen, "cannot replay", name, ENOMEM);
      return -1;
    }
    spool_seg_name(name, lane, seg, "ack");
    acks = spool_read_file(s->dirfd, name, &alen);
    if (acks == NULL && errno != ENOENT) {
      free(buf);
      free(done);
      spool_error(s, err, errlen, "cannot read", name, errno);
      return -1;
    }
    for (i = 0; acks != NULL && i + 4 <= alen; i += 4) {
      uint32_t k = spool_get32(acks + i);
      if (k < count) done[k] = 1;
    }
    free(acks);
  }
  /* Pass 2: hand the unacknowledged ones over. */
  off = SPOOL_FILE_HEADER;
  for (i = 0; i < count; i++) {
    uint32_t klen = spool_get32(buf + off + 4), dlen = spool_get32(buf + off + 8);
    const char *key = (const char *)buf + off + SPOOL_REC_HEADER;
    if (!done[i] && fn(ud, key, klen, key + klen, dlen) != 0) {
      snprintf(err, errlen, "spool: replay of %s/lane-%u-%010u.log stopped", s->dir, lane, seg);
      rc = -1;
      break;
    }
    off += SPOOL_REC_HEADER + klen + dlen;
  }
  free(done);
  free(buf);
  return rc;
}

int cio_spool_replay(cio_spool *s, cio_spool_record_fn fn, cio_spool_problem_fn problem, void *ud, char *err,
                     size_t errlen) {
  spool_file *files = NULL;
  size_t n = 0, i;
  spool_lane *taken = NULL, *l;
  int rc = 0;

  if (spool_scan(s, &files, &n, err, errlen) != 0) return -1;
  /* Take every other lane nobody holds (its process died, or closed with records left). */
  for (i = 0; i < n; i++) {
    int fd;
    if (files[i].lane == s->lane || (i > 0 && files[i].lane == files[i - 1].lane)) continue;
    fd = spool_lock_lane(s->dirfd, files[i].lane);
    if (fd < 0) {
      snprintf(err, errlen, "spool: cannot lock lane-%u.lock in %s: %s", files[i].lane, s->dir, strerror(errno));
      rc = -1;
      break;
    }
    if (fd == 0) continue;
    l = (spool_lane *)malloc(sizeof *l);
    if (l == NULL) {
      close(fd);
      snprintf(err, errlen, "spool: out of memory");
      rc = -1;
      break;
    }
    l->no = files[i].lane;
    l->lock_fd = fd;
    l->next = taken;
    taken = l;
  }
  /* Replay their segments, and our own lane's old ones (first call only), oldest first. */
  for (i = 0; rc == 0 && i < n; i++) {
    int mine = files[i].lane == s->lane, ours = 0;
    if (files[i].seg == 0 || (i > 0 && files[i].lane == files[i - 1].lane && files[i].seg == files[i - 1].seg))
      continue;
    for (l = taken; l != NULL; l = l->next)
      if (l->no == files[i].lane) ours = 1;
    if (mine) ours = !s->replayed && files[i].seg <= s->old_max;
    if (ours) rc = spool_replay_seg(s, files[i].lane, files[i].seg, fn, problem, ud, err, errlen);
  }
  if (rc == 0) {
    /* The copies must be on disk before the originals go (unless the policy is "never"). */
    if (s->o.sync && cio_spool_sync(s, err, errlen) != 0) rc = -1;
  }
  if (rc == 0) {
    for (i = 0; i < n; i++) {
      int mine = files[i].lane == s->lane, ours = 0;
      if (files[i].seg == 0) continue;
      for (l = taken; l != NULL; l = l->next)
        if (l->no == files[i].lane) ours = 1;
      if (mine) ours = !s->replayed && files[i].seg <= s->old_max;
      if (ours) spool_unlink_seg(s, files[i].lane, files[i].seg);
    }
    s->replayed = 1;
  }
  while (taken != NULL) {
    l = taken->next;
    if (rc == 0) {
      char name[SPOOL_NAME];
      snprintf(name, sizeof name, "lane-%u.lock", taken->no);
      unlinkat(s->dirfd, name, 0); /* while locked: see spool_lock_lane */
    }
    close(taken->lock_fd);
    free(taken);
    taken = l;
  }
  free(files);
  return rc;
}

int cio_spool_append(cio_spool *s, const char *key, size_t key_len, const char *data, size_t len, int force,
                     uint64_t *id, char *err, size_t errlen) {
  unsigned char *head, magic[4];
  uint64_t rec = SPOOL_REC_HEADER + (uint64_t)key_len + len;
  uint32_t crc;
  spool_seg *g;
  char name[SPOOL_NAME];

  if (key_len > SPOOL_MAX_FIELD || len == 0 || len > SPOOL_MAX_FIELD) {
    snprintf(err, errlen, "spool: record too large");
    return CIO_SPOOL_IO;
  }
  pthread_mutex_lock(&s->mu);
  if (!force && s->unacked + rec > s->o.max_bytes) {
    pthread_mutex_unlock(&s->mu);
    return CIO_SPOOL_FULL;
  }
  if (s->fd < 0 || (s->size > SPOOL_FILE_HEADER && s->size + rec > s->o.segment_bytes) ||
      s->size + rec > s->map_size) {
    if (spool_roll(s, rec, err, errlen) != 0) {
      pthread_mutex_unlock(&s->mu);
      return CIO_SPOOL_IO;
    }
  }
  g = s->cur;
  if (g->count == g->cap) {
    size_t c = g->cap ? g->cap * 2 : 256;
    uint32_t *sz = (uint32_t *)realloc(g->sizes, c * sizeof *sz);
    if (sz == NULL) {
      pthread_mutex_unlock(&s->mu);
      snprintf(err, errlen, "spool: out of memory");
      return CIO_SPOOL_IO;
    }
    g->sizes = sz;
    g->cap = c;
  }
  if (spool_grow(s, (size_t)(s->size + rec)) != 0) {
    /* Disk full, a file-size limit (EFBIG), ...: nothing written; the next append tries again. */
    int e = errno;
    spool_seg_name(name, s->lane, g->no, "log");
    spool_error(s, err, errlen, "cannot write", name, e);
    pthread_mutex_unlock(&s->mu);
    return CIO_SPOOL_IO;
  }
  /* The record, its magic last: until that store, a replay sees the end of the log here. */
  head = s->map + s->size;
  spool_put32(head + 4, (uint32_t)key_len);
  spool_put32(head + 8, (uint32_t)len);
  memcpy(head + SPOOL_REC_HEADER, key, key_len);
  memcpy(head + SPOOL_REC_HEADER + key_len, data, len);
  spool_put32(magic, SPOOL_REC_MAGIC);
  crc = spool_crc(s, 0, magic, 4);
  crc = spool_crc(s, crc, head + 4, 8);
  crc = spool_crc(s, crc, head + SPOOL_REC_HEADER, key_len + len);
  spool_put32(head + 12, crc);
  __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the compiler keeps the magic's store last */
  memcpy(head, magic, 4);
  s->size += rec;
  g->sizes[g->count++] = (uint32_t)rec;
  s->unacked += rec;
  s->dirty = 1;
  *id = s->next_id++;
  pthread_mutex_unlock(&s->mu);
  return CIO_SPOOL_OK;
}

void cio_spool_ack(cio_spool *s, uint64_t id) {
  spool_seg *g;
  size_t k;
  pthread_mutex_lock(&s->mu);
  g = spool_seg_of(s, id);
  if (g == NULL || (g->sizes[id - g->first] & SPOOL_ACKED)) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  k = (size_t)(id - g->first);
  s->unacked -= g->sizes[k];
  g->sizes[k] |= SPOOL_ACKED;
  g->acked++;
  if (g->npend == g->pend_cap) {
    size_t c = g->pend_cap ? g->pend_cap * 2 : 256;
    uint32_t *p = (uint32_t *)realloc(g->pend, c * sizeof *p);
    if (p == NULL) spool_write_acks(s, g); /* out of memory: write what is buffered, then this one */
    else {
      g->pend = p;
      g->pend_cap = c;
    }
  }
  if (g->npend < g->pend_cap) g->pend[g->npend++] = (uint32_t)k;
  pthread_mutex_unlock(&s->mu);
}

void cio_spool_flush(cio_spool *s) {
  spool_seg *g;
  pthread_mutex_lock(&s->mu);
  for (g = s->segs; g != NULL; g = g->next) spool_write_acks(s, g);
  spool_reap(s);
  pthread_mutex_unlock(&s->mu);
}

int cio_spool_sync(cio_spool *s, char *err, size_t errlen) {
  int fd;
  unsigned no;
  pthread_mutex_lock(&s->mu);
  if (!s->dirty || s->fd < 0) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  /* fsync a duplicate outside the mutex: appends go on meanwhile (a roll closes s->fd only). */
  fd = dup(s->fd);
  no = s->cur->no;
  if (fd >= 0) s->dirty = 0;
  pthread_mutex_unlock(&s->mu);
  if (fd < 0 || spool_fsync(fd) != 0) {
    char name[SPOOL_NAME];
    int e = errno;
    if (fd >= 0) close(fd);
    pthread_mutex_lock(&s->mu);
    s->dirty = 1;
    pthread_mutex_unlock(&s->mu);
    spool_seg_name(name, s->lane, no, "log");
    spool_error(s, err, errlen, "cannot sync", name, e);
    return -1;
  }
  close(fd);
  return 0;
}

uint64_t cio_spool_bytes(cio_spool *s) {
  uint64_t n;
  pthread_mutex_lock(&s->mu);
  n = s->unacked;
  pthread_mutex_unlock(&s->mu);
  return n;
}

const char *cio_spool_lane(cio_spool *s) {
  return s->lane_name;
}

void cio_spool_close(cio_spool *s) {
  spool_seg *g;
  if (s == NULL) return;
  pthread_mutex_lock(&s->mu);
  for (g = s->segs; g != NULL; g = g->next) spool_write_acks(s, g);
  if (s->cur != NULL && s->cur->acked == s->cur->count) {
    if (s->map != NULL) munmap(s->map, s->map_size);
    s->map = NULL;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->cur = NULL; /* every record acknowledged: reaped with the others */
  }
  spool_seal(s);
  s->cur = NULL;
  spool_reap(s);
  if (s->segs == NULL && s->replayed) {
    /* Nothing left: the lane goes (unlinked while locked; see spool_lock_lane). When the old
     * segments were never replayed, the lane keeps them for the next process. */
    char name[SPOOL_NAME];
    snprintf(name, sizeof name, "lane-%u.lock", s->lane);
    unlinkat(s->dirfd, name, 0);
  }
  while (s->segs != NULL) {
    g = s->segs->next;
    spool_seg_free(s->segs);
    s->segs = g;
  }
  pthread_mutex_unlock(&s->mu);
  close(s->lock_fd);
  close(s->dirfd);
  pthread_mutex_destroy(&s->mu);
  free(s->dir);
  free(s);
}

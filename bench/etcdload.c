/*  lapse-etcdload: grants etcd leases and keeps them alive, timed.

    Debian packages no etcd benchmark tool and no gRPC library for C, so
    this speaks to etcd's JSON gateway (HTTP/1.1 on the client port,
    paths /v3/lease/grant, /v3/kv/put and /v3/lease/keepalive) over
    plain sockets.  A keepalive request is one HTTP POST whose body holds
    --ids-per-request keepalive messages; the gateway feeds them into one
    LeaseKeepAlive stream and answers with one result per lease, so a
    batch costs one round trip, like a Lapse touch of many ids.  Each
    connection has one request in flight.  JSON costs etcd more than its
    native gRPC would, which docs/benchmarks.md says beside the figures.

    Steps: with --grant, grant leases --first to --first + --population
    - 1 with --ttl (each with the key client/<id> when --keys is on),
    then, for --duration, keep them alive in a walk as fast as etcd
    answers.  Prints one key=value line per phase.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "histogram.h"
#include "log.h"
#include "settings.h"

#define PROGRAM "lapse-etcdload"
#define EXIT_USAGE 2
#define REQUEST_MAX (1 << 20)

static const setting_def_t s_settings[] = {
    { "address", SETTING_STRING, "127.0.0.1", 1, 64, false,
      "etcd client address (IPv4)" },
    { "port", SETTING_UINT, "2379", 1, 65535, false,
      "etcd client port" },
    { "connections", SETTING_UINT, "8", 1, 1000, false,
      "HTTP connections, one request in flight each" },
    { "ids-per-request", SETTING_UINT, "100", 1, 1000, false,
      "keepalive messages in one request" },
    { "population", SETTING_UINT, "10000", 1, 100000000, false,
      "leases" },
    { "first", SETTING_UINT, "1", 1, 0, false,
      "id of the first lease" },
    { "grant", SETTING_BOOL, "on", 0, 0, false,
      "grant the leases first" },
    { "keys", SETTING_BOOL, "off", 0, 0, false,
      "attach the key client/<id> to each lease granted" },
    { "ttl", SETTING_UINT, "3600", 1, 0, false,
      "seconds each lease lives without a keepalive" },
    { "duration", SETTING_DURATION, "10s", 0, 0, false,
      "how long to send keepalives; 0 grants only" },
    { "log-level", SETTING_LOG_LEVEL, "warn", 0, 0, false,
      "lowest level logged: debug, info, warn or error" },
    SETTING_END
};

/*  One connection and the response being read on it.  */
typedef struct {
    int fd;
    char *in;                   /* bytes read, not yet parsed */
    size_t in_used;
    size_t in_capacity;
    bool busy;                  /* a request is in flight */
    uint64_t sent_ns;
    uint32_t ids;               /* leases in the request in flight */
    uint64_t cursor;            /* next lease of the walk */
    int step;                   /* grant: 0 grant, 1 put */
    uint64_t lease;             /* grant: the lease being set up */
} conn_t;

typedef struct {
    uint32_t conn_count;
    conn_t *conns;
    uint32_t ids_per_request;
    uint64_t population;
    uint64_t first;
    uint64_t ttl;
    bool keys;
    histogram_t latency;
    uint64_t requests;
    uint64_t acked;             /* leases renewed or granted */
    uint64_t errors;
    char *out;                  /* request being built */
} etcdload_t;

static uint64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000000000ull + (uint64_t) now.tv_nsec;
}

static uint64_t
s_wall_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000ull
           + (uint64_t) now.tv_nsec / 1000000ull;
}

static size_t
s_base64 (const char *in, size_t size, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t length = 0;
    for (size_t index = 0; index < size; index += 3) {
        uint32_t bits = (uint32_t) (uint8_t) in[index] << 16;
        if (index + 1 < size)
            bits |= (uint32_t) (uint8_t) in[index + 1] << 8;
        if (index + 2 < size)
            bits |= (uint8_t) in[index + 2];
        out[length++] = digits[(bits >> 18) & 63];
        out[length++] = digits[(bits >> 12) & 63];
        out[length++] = index + 1 < size ? digits[(bits >> 6) & 63] : '=';
        out[length++] = index + 2 < size ? digits[bits & 63] : '=';
    }
    out[length] = '\0';
    return length;
}

static int
s_connect (const char *address, uint16_t port)
{
    struct sockaddr_in peer = { .sin_family = AF_INET,
                                .sin_port = htons (port) };
    if (inet_pton (AF_INET, address, &peer.sin_addr) != 1)
        return -1;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect (fd, (struct sockaddr *) &peer, sizeof peer) != 0) {
        close (fd);
        return -1;
    }
    return fd;
}

/*  Sends a POST of body to path on conn.  Returns 0, or -1.  */
static int
s_post (conn_t *conn, const char *path, const char *body, size_t size)
{
    char head[256];
    int length = snprintf (head, sizeof head,
                           "POST %s HTTP/1.1\r\nHost: etcd\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           path, size);
    struct iovec parts[2] = { { head, (size_t) length },
                              { (void *) body, size } };
    struct msghdr message = { .msg_iov = parts, .msg_iovlen = 2 };
    ssize_t sent = sendmsg (conn->fd, &message, MSG_NOSIGNAL);
    if (sent != (ssize_t) ((size_t) length + size))
        return -1;
    conn->busy = true;
    conn->sent_ns = s_now_ns ();
    return 0;
}

/*  Counts the non-overlapping occurrences of needle in text.  */
static uint64_t
s_count (const char *text, size_t size, const char *needle)
{
    uint64_t count = 0;
    size_t length = strlen (needle);
    const char *at = text;
    const char *end = text + size;
    while ((at = memmem (at, (size_t) (end - at), needle, length))) {
        count++;
        at += length;
    }
    return count;
}

/*  Walks a chunked body.  With write off, only checks that the last
    chunk arrived; with it on, also moves the chunks' data together to
    the start.  Returns the body's length once complete, with the bytes
    it spans in *consumed, -1 while more is needed, -2 when malformed.
    The in-place move is kept for a complete body so that a partial one
    can be walked again when more arrives.  */
static ssize_t
s_dechunk (char *data, size_t size, bool write, size_t *consumed)
{
    size_t read_at = 0;
    size_t write_at = 0;
    for (;;) {
        char *line_end = memmem (data + read_at, size - read_at, "\r\n", 2);
        if (!line_end)
            return -1;
        char *after = NULL;
        unsigned long chunk = strtoul (data + read_at, &after, 16);
        if (after == data + read_at)
            return -2;
        size_t start = (size_t) (line_end - data) + 2;
        if (start + chunk + 2 > size)
            return -1;
        if (write)
            memmove (data + write_at, data + start, chunk);
        write_at += chunk;
        read_at = start + chunk + 2;
        if (chunk == 0) {
            *consumed = read_at;
            return (ssize_t) write_at;
        }
    }
}

/*  Parses one complete response from conn->in, if there is one.  Sets
    *body and *length to its decoded body and *status to its status.
    Returns the bytes it took from conn->in, 0 when incomplete, -1 when
    malformed.  The body is decoded in place, so it is valid until the
    caller drops the consumed bytes.  */
static ssize_t
s_parse (conn_t *conn, int *status, char **body, size_t *length)
{
    char *data = conn->in;
    size_t size = conn->in_used;
    char *end = memmem (data, size, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t) (end - data) + 4;
    if (sscanf (data, "HTTP/1.1 %d", status) != 1)
        return -1;

    *body = data + head;
    char *field = memmem (data, head, "Content-Length: ", 16);
    if (field) {
        size_t content = strtoul (field + 16, NULL, 10);
        if (head + content > size)
            return 0;
        *length = content;
        return (ssize_t) (head + content);
    }
    size_t consumed = 0;
    ssize_t decoded = s_dechunk (data + head, size - head, false, &consumed);
    if (decoded == -1)
        return 0;
    if (decoded < 0)
        return -1;
    s_dechunk (data + head, size - head, true, &consumed);
    *length = (size_t) decoded;
    return (ssize_t) (head + consumed);
}

/*  Reads what arrived on conn.  Returns 1 when a response completed,
    with its status, body and length set, 0 when not yet, -1 when the
    connection failed.  */
static int
s_read (conn_t *conn, int *status, char **body, size_t *length,
        size_t *consumed)
{
    if (conn->in_capacity - conn->in_used < 65536) {
        conn->in_capacity = conn->in_capacity * 2 + 65536;
        conn->in = realloc (conn->in, conn->in_capacity);
        if (!conn->in)
            return -1;
    }
    ssize_t got = recv (conn->fd, conn->in + conn->in_used,
                        conn->in_capacity - conn->in_used, 0);
    if (got <= 0)
        return -1;
    conn->in_used += (size_t) got;
    ssize_t taken = s_parse (conn, status, body, length);
    if (taken < 0)
        return -1;
    *consumed = (size_t) taken;
    return taken > 0;
}

static void
s_drop_consumed (conn_t *conn, size_t consumed)
{
    memmove (conn->in, conn->in + consumed, conn->in_used - consumed);
    conn->in_used -= consumed;
    conn->busy = false;
}

/*  Starts the next request on conn.  Returns 0 when one was sent, 1
    when conn has nothing left to do, -1 on a failure.  */
typedef int (next_fn) (etcdload_t *self, conn_t *conn);

/*  Takes a completed response.  */
typedef void (done_fn) (etcdload_t *self, conn_t *conn, int status,
                        const char *body, size_t length);

/*  Runs next and done on every connection until each has nothing left
    to do or deadline_ns (0: none) passed.  Returns 0, or -1 when a
    connection failed.  */
static int
s_loop (etcdload_t *self, next_fn *next, done_fn *done, uint64_t deadline)
{
    struct pollfd fds[self->conn_count];
    uint32_t active = 0;
    for (uint32_t index = 0; index < self->conn_count; index++) {
        int rc = next (self, &self->conns[index]);
        if (rc < 0)
            return -1;
        active += rc == 0;
    }
    while (active > 0) {
        for (uint32_t index = 0; index < self->conn_count; index++)
            fds[index] = (struct pollfd) { self->conns[index].fd,
                                           self->conns[index].busy
                                               ? POLLIN
                                               : 0,
                                           0 };
        if (poll (fds, self->conn_count, 1000) < 0 && errno != EINTR)
            return -1;
        bool stop = deadline && s_now_ns () >= deadline;
        for (uint32_t index = 0; index < self->conn_count; index++) {
            if (!(fds[index].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            conn_t *conn = &self->conns[index];
            int status = 0;
            char *body = NULL;
            size_t length = 0, consumed = 0;
            int rc = s_read (conn, &status, &body, &length, &consumed);
            if (rc < 0)
                return -1;
            if (rc == 0)
                continue;
            done (self, conn, status, body, length);
            s_drop_consumed (conn, consumed);
            rc = stop ? 1 : next (self, conn);
            if (rc < 0)
                return -1;
            active -= rc == 1;
        }
    }
    return 0;
}

static int
s_next_grant (etcdload_t *self, conn_t *conn)
{
    char body[512];
    int length;
    if (conn->step == 1) {
        char key[64], key64[96], value64[8];
        int size = snprintf (key, sizeof key, "client/%012" PRIu64,
                             conn->lease);
        s_base64 (key, (size_t) size, key64);
        s_base64 ("1", 1, value64);
        length = snprintf (body, sizeof body,
                           "{\"key\":\"%s\",\"value\":\"%s\","
                           "\"lease\":\"%" PRIu64 "\"}",
                           key64, value64, conn->lease);
        return s_post (conn, "/v3/kv/put", body, (size_t) length);
    }
    if (conn->cursor >= self->population)
        return 1;
    conn->lease = self->first + conn->cursor;
    conn->cursor += self->conn_count;
    length = snprintf (body, sizeof body,
                       "{\"TTL\":\"%" PRIu64 "\",\"ID\":\"%" PRIu64 "\"}",
                       self->ttl, conn->lease);
    return s_post (conn, "/v3/lease/grant", body, (size_t) length);
}

static void
s_done_grant (etcdload_t *self, conn_t *conn, int status, const char *body,
              size_t length)
{
    bool ok = status == 200 && !memmem (body, length, "\"error\"", 7);
    if (!ok && self->errors++ < 5)
        log_warn ("grant failed", "status=%d lease=%" PRIu64 " body=%s",
                  status, conn->lease,
                  log_quote_n (body, length < 200 ? length : 200));
    self->requests++;
    if (conn->step == 0 && ok)
        self->acked++;
    conn->step = conn->step == 0 && ok && self->keys ? 1 : 0;
}

static int
s_next_keepalive (etcdload_t *self, conn_t *conn)
{
    char *out = self->out;
    size_t used = 0;
    for (uint32_t index = 0; index < self->ids_per_request; index++) {
        used += (size_t) sprintf (out + used, "{\"ID\":\"%" PRIu64 "\"}\n",
                                  self->first + conn->cursor);
        conn->cursor = (conn->cursor + 1) % self->population;
    }
    conn->ids = self->ids_per_request;
    return s_post (conn, "/v3/lease/keepalive", out, used);
}

static void
s_done_keepalive (etcdload_t *self, conn_t *conn, int status,
                  const char *body, size_t length)
{
    histogram_record (&self->latency, s_now_ns () - conn->sent_ns);
    self->requests++;
    //  A renewed lease comes back with its TTL; an unknown one without
    uint64_t renewed = status == 200 ? s_count (body, length, "\"TTL\"")
                                     : 0;
    self->acked += renewed;
    if (renewed < conn->ids && self->errors++ < 5)
        log_warn ("keepalive failed", "status=%d renewed=%" PRIu64
                  " sent=%u", status, renewed, conn->ids);
}

static int
s_open (etcdload_t *self, const char *address, uint16_t port)
{
    self->conns = calloc (self->conn_count, sizeof (conn_t));
    self->out = malloc (REQUEST_MAX);
    if (!self->conns || !self->out)
        return -1;
    for (uint32_t index = 0; index < self->conn_count; index++) {
        self->conns[index].fd = s_connect (address, port);
        if (self->conns[index].fd < 0) {
            fprintf (stderr, "%s: cannot connect to %s:%u: %s\n", PROGRAM,
                     address, port, strerror (errno));
            return -1;
        }
    }
    return 0;
}

static void
s_reset (etcdload_t *self, bool walk)
{
    for (uint32_t index = 0; index < self->conn_count; index++) {
        conn_t *conn = &self->conns[index];
        conn->cursor = walk ? index * self->population / self->conn_count
                            : index;
        conn->step = 0;
    }
    self->requests = self->acked = self->errors = 0;
    histogram_reset (&self->latency);
}

static int
s_grant (etcdload_t *self)
{
    s_reset (self, false);
    uint64_t started = s_now_ns ();
    if (s_loop (self, s_next_grant, s_done_grant, 0) != 0)
        return -1;
    double seconds = (double) (s_now_ns () - started) / 1e9;
    printf ("mode=grant leases=%" PRIu64 " granted=%" PRIu64
            " keys=%s ttl_s=%" PRIu64 " duration_ms=%.0f per_s=%.0f "
            "errors=%" PRIu64 " last_wall_ms=%" PRIu64 "\n",
            self->population, self->acked, self->keys ? "on" : "off",
            self->ttl, seconds * 1e3, (double) self->acked / seconds,
            self->errors, s_wall_ms ());
    fflush (stdout);
    return 0;
}

static int
s_keepalive (etcdload_t *self, int64_t duration_ms)
{
    s_reset (self, true);
    uint64_t started = s_now_ns ();
    uint64_t deadline = started + (uint64_t) duration_ms * 1000000ull;
    if (s_loop (self, s_next_keepalive, s_done_keepalive, deadline) != 0)
        return -1;
    double seconds = (double) (s_now_ns () - started) / 1e9;
    histogram_t *latency = &self->latency;
    printf ("mode=keepalive connections=%u ids_per_request=%u "
            "requests=%" PRIu64 " ids=%" PRIu64 " ids_per_s=%.0f "
            "p50_us=%.1f p99_us=%.1f max_us=%.1f errors=%" PRIu64 "\n",
            self->conn_count, self->ids_per_request, self->requests,
            self->acked, (double) self->acked / seconds,
            (double) histogram_percentile (latency, 50) / 1e3,
            (double) histogram_percentile (latency, 99) / 1e3,
            (double) latency->max / 1e3, self->errors);
    return 0;
}

int
main (int argc, char **argv)
{
    log_init ("etcdload");
    char error[1024];
    settings_t *settings = settings_load (PROGRAM, "etcdload", s_settings,
                                          argc, argv, error, sizeof error);
    if (!settings) {
        fprintf (stderr, "%s: %s\n", PROGRAM, error);
        return EXIT_USAGE;
    }
    if (settings_help_requested (settings)) {
        settings_print_help (s_settings, "usage: " PROGRAM " [options]");
        settings_destroy (&settings);
        return 0;
    }
    log_set_level (settings_log_level (settings, "log-level"));

    static etcdload_t self;
    self.conn_count = (uint32_t) settings_uint (settings, "connections");
    self.ids_per_request = (uint32_t) settings_uint (settings,
                                                     "ids-per-request");
    self.population = settings_uint (settings, "population");
    self.first = settings_uint (settings, "first");
    self.ttl = settings_uint (settings, "ttl");
    self.keys = settings_bool (settings, "keys");
    int64_t duration_ms = settings_duration (settings, "duration");

    int rc = s_open (&self, settings_string (settings, "address"),
                     (uint16_t) settings_uint (settings, "port"));
    if (rc == 0 && settings_bool (settings, "grant"))
        rc = s_grant (&self);
    if (rc == 0 && duration_ms > 0)
        rc = s_keepalive (&self, duration_ms);

    for (uint32_t index = 0; self.conns && index < self.conn_count; index++) {
        if (self.conns[index].fd > 0)
            close (self.conns[index].fd);
        free (self.conns[index].in);
    }
    free (self.conns);
    free (self.out);
    settings_destroy (&settings);
    return rc == 0 ? 0 : 1;
}

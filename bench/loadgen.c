/*  lapse-loadgen: drives the registry's command socket and measures it.

    Steps: register the population (pipelined over every connection),
    then touch it for a duration, paced at a target rate in ids per
    second or as fast as the registry acknowledges, with at most a
    window of messages in flight per connection.  Every acknowledgement
    is timed into a histogram; the summary is one line of key=value
    fields on stdout, and --timeline writes one TSV row per 100 ms.

    Client ids are "client:" and twelve digits, the same 19 bytes as the
    keys redis-benchmark makes from client:__rand_int__, so the peer
    comparison moves the same bytes per id.  Touch bodies are encoded
    once at start (one per batch of the walk) and only their request id
    is rewritten per send, so the generator spends its time on sockets.

    SIGUSR1 starts a marked interval and SIGUSR2 ends it; the messages
    in flight (or due) at any time within it get a histogram of their own
    (marked_* fields) and the others another (unmarked_*), which run.sh
    uses to time touches during a sweep.  --probe instead sends one touch
    and reports when the registry first answered (a restart's readiness).
*/
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "histogram.h"
#include "log.h"
#include "protocol.h"
#include "settings.h"

#define PROGRAM "lapse-loadgen"
#define EXIT_USAGE 2
#define ID_FORMAT "client:%012" PRIu64
#define ID_SIZE 32                      /* 19 bytes, a NUL, room */
#define TIMELINE_NS 100000000ull        /* one timeline row per 100 ms */
#define PACE_MIN_NS 200000ull           /* paced sends in bursts >= 200 us */
#define REQ_MARKER 0xA5A5A5A5A5A5A5A5ull

static const setting_def_t s_settings[] = {
    { "commands", SETTING_ENDPOINT, "tcp://127.0.0.1:7710", 0, 0, false,
      "registry command endpoint" },
    { "node", SETTING_STRING, "bench", 1, MSG_NODE_MAX, false,
      "API node the population is registered for" },
    { "connections", SETTING_UINT, "8", 1, 1000, false,
      "DEALER sockets, each its own connection" },
    { "ids-per-touch", SETTING_UINT, "100", 1, MSG_TOUCH_IDS_MAX, false,
      "client ids in one touch message" },
    { "rate", SETTING_UINT, "0", 0, 0, false,
      "target ids per second for this process; 0 sends as fast as "
      "the window allows" },
    { "population", SETTING_UINT, "1000000", 1, 999999999999ull, false,
      "clients client:000000000000 onwards" },
    { "touch-ids", SETTING_UINT, "0", 0, 999999999999ull, false,
      "touch only this many clients from the first; 0 touches all" },
    { "start", SETTING_UINT, "0", 0, 0, false,
      "where this process starts walking the touched clients, so that "
      "several processes touch different ids at once" },
    { "duration", SETTING_DURATION, "10s", 0, 0, false,
      "how long to touch; 0 registers only" },
    { "window", SETTING_UINT, "4", 1, 100000, false,
      "touch messages in flight per connection" },
    { "register", SETTING_BOOL, "on", 0, 0, false,
      "register the population before touching" },
    { "register-window", SETTING_UINT, "256", 1, 100000, false,
      "register messages in flight per connection" },
    { "timeline", SETTING_STRING, NULL, 0, 0, false,
      "write throughput and latency per 100 ms as TSV to this file" },
    { "probe", SETTING_BOOL, "off", 0, 0, false,
      "send one touch, wait for the first answer, print ready_ms" },
    { "since-ms", SETTING_UINT, "0", 0, 0, false,
      "probe: wall-clock ms (Unix epoch) that ready_ms counts from; 0 "
      "counts from the probe's start" },
    { "timeout", SETTING_DURATION, "5s", 1, 0, false,
      "how long to wait for the replies still in flight at the end, "
      "and how long a probe waits" },
    { "log-level", SETTING_LOG_LEVEL, "warn", 0, 0, false,
      "lowest level logged: debug, info, warn or error" },
    SETTING_END
};

/*  One encoded touch, stored in the body arena.  */
typedef struct {
    size_t offset;              /* into loadgen_t.arena */
    size_t size;
    size_t req_offset;          /* where the 8 bytes of "req" sit */
    uint32_t ids;
} body_t;

/*  One message in flight: when it counts from and how many ids.  */
typedef struct {
    uint64_t since_ns;
    uint32_t ids;
} flight_t;

typedef struct {
    void *socket;
    flight_t *ring;             /* window entries, oldest at head */
    uint32_t head;
    uint32_t in_flight;
    uint64_t next_req;          /* req of the next send */
    uint64_t cursor;            /* next body of the walk */
} conn_t;

typedef struct {
    uint64_t msgs;
    uint64_t ids;
    uint64_t errors;            /* error replies and undecodable replies */
    uint64_t unknown;           /* ids the registry did not know */
    uint64_t lost;              /* no reply before the timeout */
} counts_t;

typedef struct {
    settings_t *settings;
    void *context;
    conn_t *conns;
    uint32_t conn_count;
    uint32_t window;
    uint32_t ids_per_touch;
    uint64_t population;
    uint64_t touch_ids;
    uint64_t rate;
    char node[MSG_NODE_MAX + 1];

    uint8_t *arena;
    size_t arena_size;
    size_t arena_capacity;
    body_t *bodies;
    uint64_t body_count;

    histogram_t total;
    histogram_t window_hist;    /* the current timeline row */
    histogram_t marked;         /* messages in flight in the interval */
    histogram_t unmarked;       /* all the others */
    counts_t counts;
    uint64_t marked_ids;
    uint64_t window_ids;
    FILE *timeline;
} loadgen_t;

/*  The marked interval, in monotonic ns: start 0 until SIGUSR1, end
    UINT64_MAX until SIGUSR2.  Set only by the signal handler.  */
static volatile sig_atomic_t s_marked;
static volatile uint64_t s_mark_start_ns;
static volatile uint64_t s_mark_end_ns = UINT64_MAX;
static volatile sig_atomic_t s_stop;

static uint64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000000000ull + (uint64_t) now.tv_nsec;
}

/*  clock_gettime is async-signal-safe, so the handler stamps the
    interval itself.  */
static void
s_on_signal (int number)
{
    if (number == SIGUSR1) {
        s_mark_end_ns = UINT64_MAX;
        s_mark_start_ns = s_now_ns ();
        s_marked = 1;
    }
    else if (number == SIGUSR2) {
        s_mark_end_ns = s_now_ns ();
        s_marked = 0;
    }
    else
        s_stop = 1;
}

static uint64_t
s_wall_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000ull
           + (uint64_t) now.tv_nsec / 1000000ull;
}

static void
s_write_be64 (uint8_t *out, uint64_t value)
{
    for (int index = 7; index >= 0; index--) {
        out[index] = (uint8_t) value;
        value >>= 8;
    }
}

/*  Appends an encoded message to the arena.  Returns its offset, or
    exits when out of memory (the generator cannot run without it).  */
static size_t
s_arena_append (loadgen_t *self, const void *data, size_t size)
{
    if (self->arena_size + size > self->arena_capacity) {
        size_t capacity = self->arena_capacity ? self->arena_capacity : 1;
        while (capacity < self->arena_size + size)
            capacity *= 2;
        self->arena = realloc (self->arena, capacity);
        if (!self->arena)
            log_fatal ("out of memory", "arena_bytes=%zu", capacity);
        self->arena_capacity = capacity;
    }
    memcpy (self->arena + self->arena_size, data, size);
    self->arena_size += size;
    return self->arena_size - size;
}

/*  Encodes msg with the marker as its req and finds where the marker's
    eight bytes landed, so that each send can write its own req there:
    msgpack encodes a uint64 this large as 0xcf and eight bytes, and a
    decoder reads any width.  Returns 0, or -1 with the reason logged.  */
static int
s_encode_with_req_slot (msg_t *msg, void **data, size_t *size,
                        size_t *req_offset)
{
    msg_failure_t failure;
    msg->req = REQ_MARKER;
    if (msg_encode (msg, data, size, &failure) != 0) {
        log_error ("encoding failed", "type=%s error=%s",
                   msg_type_name (msg->type), log_quote (failure.message));
        return -1;
    }

    uint8_t pattern[9] = { 0xcf };
    s_write_be64 (pattern + 1, REQ_MARKER);
    const uint8_t *found = memmem (*data, *size, pattern, sizeof pattern);
    if (!found) {
        free (*data);
        log_error ("encoding failed", "error=%s",
                   log_quote ("req not found in the encoded body"));
        return -1;
    }
    *req_offset = (size_t) (found - (const uint8_t *) *data) + 1;
    return 0;
}

/*  Encodes one touch body per batch of the walk over the touched ids.  */
static int
s_encode_touches (loadgen_t *self)
{
    uint64_t batch = self->ids_per_touch;
    self->body_count = (self->touch_ids + batch - 1) / batch;
    self->bodies = calloc (self->body_count, sizeof (body_t));
    char (*text)[ID_SIZE] = calloc (batch, ID_SIZE);
    msg_str_t *views = calloc (batch, sizeof (msg_str_t));
    if (!self->bodies || !text || !views)
        log_fatal ("out of memory", "bodies=%" PRIu64, self->body_count);

    int rc = 0;
    for (uint64_t index = 0; index < self->body_count && rc == 0; index++) {
        uint64_t first = index * batch;
        uint32_t count = (uint32_t) (self->touch_ids - first < batch
                                         ? self->touch_ids - first
                                         : batch);
        for (uint32_t slot = 0; slot < count; slot++) {
            snprintf (text[slot], ID_SIZE, ID_FORMAT, first + slot);
            views[slot] = msg_str (text[slot]);
        }
        msg_t msg = { .type = MSG_TOUCH };
        msg.u.touch.ids = views;
        msg.u.touch.count = count;
        void *data = NULL;
        size_t size = 0;
        body_t *body = &self->bodies[index];
        rc = s_encode_with_req_slot (&msg, &data, &size, &body->req_offset);
        if (rc == 0) {
            body->offset = s_arena_append (self, data, size);
            body->size = size;
            body->ids = count;
            free (data);
        }
    }
    free (text);
    free (views);
    return rc;
}

static int
s_connect (loadgen_t *self, const char *endpoint)
{
    self->context = zmq_ctx_new ();
    self->conns = calloc (self->conn_count, sizeof (conn_t));
    if (!self->context || !self->conns)
        return -1;

    for (uint32_t index = 0; index < self->conn_count; index++) {
        conn_t *conn = &self->conns[index];
        conn->socket = zmq_socket (self->context, ZMQ_DEALER);
        int hwm = 0;                    /* the window bounds the queue */
        int linger = 0;
        int reconnect_ms = 10;          /* a probe notices a restart soon */
        zmq_setsockopt (conn->socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt (conn->socket, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt (conn->socket, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (conn->socket, ZMQ_RECONNECT_IVL, &reconnect_ms,
                        sizeof reconnect_ms);
        if (zmq_connect (conn->socket, endpoint) != 0) {
            log_error ("connect failed", "endpoint=%s error=%s",
                       log_quote (endpoint),
                       log_quote (zmq_strerror (zmq_errno ())));
            return -1;
        }
        conn->next_req = ((uint64_t) index << 40) + 1;
    }
    return 0;
}

static int
s_alloc_rings (loadgen_t *self, uint32_t window)
{
    self->window = window;
    for (uint32_t index = 0; index < self->conn_count; index++) {
        conn_t *conn = &self->conns[index];
        free (conn->ring);
        conn->ring = calloc (window, sizeof (flight_t));
        conn->head = 0;
        conn->in_flight = 0;
        if (!conn->ring)
            return -1;
    }
    return 0;
}

/*  Sends one body on conn with [empty][body] framing, the envelope a
    DEALER needs for the registry's ROUTER, and remembers it in the
    window.  Returns 0, or -1 when the socket refused it.  */
static int
s_send (loadgen_t *self, conn_t *conn, uint8_t *body, size_t size,
        size_t req_offset, uint32_t ids, uint64_t since_ns)
{
    s_write_be64 (body + req_offset, conn->next_req);
    if (zmq_send (conn->socket, "", 0, ZMQ_SNDMORE) != 0
        || zmq_send (conn->socket, body, size, 0) != (int) size)
        return -1;

    flight_t *slot = &conn->ring[(conn->head + conn->in_flight)
                                 % self->window];
    slot->since_ns = since_ns;
    slot->ids = ids;
    conn->in_flight++;
    conn->next_req++;
    return 0;
}

static int
s_send_touch (loadgen_t *self, conn_t *conn, uint64_t since_ns)
{
    body_t *body = &self->bodies[conn->cursor];
    conn->cursor = (conn->cursor + 1) % self->body_count;
    return s_send (self, conn, self->arena + body->offset, body->size,
                   body->req_offset, body->ids, since_ns);
}

static void
s_timeline_row (loadgen_t *self, uint64_t elapsed_ns, uint64_t span_ns)
{
    if (!self->timeline)
        return;
    histogram_t *hist = &self->window_hist;
    fprintf (self->timeline,
             "%.1f\t%" PRIu64 "\t%.0f\t%.1f\t%.1f\t%.1f\t%d\n",
             (double) elapsed_ns / 1e6, s_wall_ms (),
             (double) self->window_ids * 1e9 / (double) span_ns,
             (double) histogram_percentile (hist, 50) / 1e3,
             (double) histogram_percentile (hist, 99) / 1e3,
             (double) hist->max / 1e3, s_marked ? 1 : 0);
    histogram_reset (hist);
    self->window_ids = 0;
}

/*  Counts one decoded reply to a touch or register.  Returns true when
    it is the result expected.  */
static bool
s_count_reply (loadgen_t *self, const msg_t *reply, uint64_t expected_req)
{
    if (reply->type != MSG_RESULT || reply->req != expected_req) {
        char text[MSG_TEXT_MAX + 1] = "";
        if (reply->type == MSG_ERROR)
            msg_str_copy (reply->u.error.message, text, sizeof text);
        if (self->counts.errors++ < 10)
            log_warn ("unexpected reply",
                      "type=%s req=%" PRIu64 " expected_req=%" PRIu64
                      " message=%s",
                      msg_type_name (reply->type), reply->req, expected_req,
                      log_quote (text));
        return false;
    }
    const msg_result_t *result = &reply->u.result;
    self->counts.unknown += result->unknown_count + result->evicted_count;
    return true;
}

/*  Takes one reply off conn, if any.  Returns 1 when one was read, 0
    when none was waiting, -1 on a socket failure.  */
static int
s_receive (loadgen_t *self, conn_t *conn, bool measured)
{
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    int size = zmq_msg_recv (&frame, conn->socket, ZMQ_DONTWAIT);
    if (size < 0) {
        zmq_msg_close (&frame);
        return zmq_errno () == EAGAIN ? 0 : -1;
    }
    //  The empty delimiter comes first, then the body
    while (zmq_msg_more (&frame))
        zmq_msg_recv (&frame, conn->socket, 0);
    uint64_t now = s_now_ns ();

    if (conn->in_flight == 0) {
        self->counts.errors++;          /* a reply nobody asked for */
        zmq_msg_close (&frame);
        return 1;
    }
    flight_t *slot = &conn->ring[conn->head];
    uint64_t expected = conn->next_req - conn->in_flight;
    msg_t reply = { 0 };
    msg_failure_t failure;
    int decoded = msg_decode (zmq_msg_data (&frame), zmq_msg_size (&frame),
                              &reply, &failure);
    bool ok = decoded == 0 && s_count_reply (self, &reply, expected);
    if (decoded != 0)
        self->counts.errors++;
    msg_release (&reply);
    zmq_msg_close (&frame);

    //  Only results count as acknowledged ids; errors are counted apart
    conn->head = (conn->head + 1) % self->window;
    conn->in_flight--;
    self->counts.msgs++;
    if (ok)
        self->counts.ids += slot->ids;
    if (!ok || !measured)
        return 1;

    uint64_t latency = now - slot->since_ns;
    histogram_record (&self->total, latency);
    histogram_record (&self->window_hist, latency);
    self->window_ids += slot->ids;

    //  A message due before the interval ended and answered after it
    //  began waited through some of it, whenever it was answered
    bool marked = s_mark_start_ns != 0 && slot->since_ns <= s_mark_end_ns
                  && now >= s_mark_start_ns;
    histogram_record (marked ? &self->marked : &self->unmarked, latency);
    if (marked)
        self->marked_ids += slot->ids;
    return 1;
}

/*  Waits up to timeout_ms (-1: no limit) for replies, with extra_fd
    (or -1) polled too, and reads all that arrived.  Returns the number
    read, or -1 on a failure.  */
static int
s_poll (loadgen_t *self, int timeout_ms, int extra_fd, bool measured)
{
    zmq_pollitem_t items[self->conn_count + 1];
    for (uint32_t index = 0; index < self->conn_count; index++)
        items[index] = (zmq_pollitem_t) { self->conns[index].socket, 0,
                                          ZMQ_POLLIN, 0 };
    items[self->conn_count] = (zmq_pollitem_t) { NULL, extra_fd,
                                                 ZMQ_POLLIN, 0 };
    int count = (int) self->conn_count + (extra_fd >= 0 ? 1 : 0);
    if (zmq_poll (items, count, timeout_ms) < 0)
        return zmq_errno () == EINTR ? 0 : -1;

    int got = 0;
    for (uint32_t index = 0; index < self->conn_count; index++) {
        if (!(items[index].revents & ZMQ_POLLIN))
            continue;
        int rc;
        while ((rc = s_receive (self, &self->conns[index], measured)) == 1)
            got++;
        if (rc < 0)
            return -1;
    }
    if (extra_fd >= 0 && (items[self->conn_count].revents & ZMQ_POLLIN)) {
        uint64_t expirations;
        if (read (extra_fd, &expirations, sizeof expirations) < 0
            && errno != EAGAIN)
            return -1;
    }
    return got;
}

/*  Returns a connection with room in its window, taking them in turn so
    that every connection carries its share, or NULL when all are full.  */
static conn_t *
s_free_conn (loadgen_t *self, uint32_t *turn)
{
    for (uint32_t tried = 0; tried < self->conn_count; tried++) {
        conn_t *conn = &self->conns[*turn];
        *turn = (*turn + 1) % self->conn_count;
        if (conn->in_flight < self->window)
            return conn;
    }
    return NULL;
}

static bool
s_all_answered (loadgen_t *self)
{
    for (uint32_t index = 0; index < self->conn_count; index++)
        if (self->conns[index].in_flight > 0)
            return false;
    return true;
}

/*  Reads the replies still in flight for up to timeout_ms and counts the
    rest as lost, also after SIGTERM: stopping a run early still counts
    what it sent.  Returns when the last reply came (monotonic ns).  */
static uint64_t
s_drain (loadgen_t *self, int64_t timeout_ms, bool measured)
{
    uint64_t deadline = s_now_ns () + (uint64_t) timeout_ms * 1000000ull;
    uint64_t last = s_now_ns ();
    while (!s_all_answered (self)) {
        uint64_t now = s_now_ns ();
        if (now >= deadline)
            break;
        int got = s_poll (self, (int) ((deadline - now) / 1000000ull) + 1,
                          -1, measured);
        if (got < 0)
            break;
        if (got > 0)
            last = s_now_ns ();
    }
    for (uint32_t index = 0; index < self->conn_count; index++) {
        self->counts.lost += self->conns[index].in_flight;
        self->conns[index].in_flight = 0;
    }
    return last;
}

/*  Sends one register message for client number on conn.  */
static int
s_send_register (loadgen_t *self, conn_t *conn, uint64_t number)
{
    char id[ID_SIZE];
    snprintf (id, sizeof id, ID_FORMAT, number);
    msg_t msg = { .type = MSG_REGISTER };
    msg.u.register_.id = msg_str (id);
    msg.u.register_.node = msg_str (self->node);

    void *data = NULL;
    size_t size = 0;
    size_t req_offset = 0;
    if (s_encode_with_req_slot (&msg, &data, &size, &req_offset) != 0)
        return -1;
    int rc = s_send (self, conn, data, size, req_offset, 1, s_now_ns ());
    free (data);
    return rc;
}

/*  Registers clients 0 to population - 1 and prints one summary line.
    Returns 0, or -1 when sending failed.  */
static int
s_register_population (loadgen_t *self, uint32_t window, int64_t timeout_ms)
{
    if (s_alloc_rings (self, window) != 0)
        return -1;
    uint64_t started = s_now_ns ();
    uint64_t sent = 0;
    uint32_t turn = 0;
    while (sent < self->population && !s_stop) {
        conn_t *conn;
        while (sent < self->population && (conn = s_free_conn (self, &turn)))
            if (s_send_register (self, conn, sent++) != 0)
                return -1;
        if (s_poll (self, 1000, -1, false) < 0)
            return -1;
    }
    uint64_t finished = s_drain (self, timeout_ms, false);

    double seconds = (double) (finished - started) / 1e9;
    printf ("mode=register clients=%" PRIu64 " acked=%" PRIu64
            " duration_ms=%.0f per_s=%.0f errors=%" PRIu64 " lost=%" PRIu64
            "\n",
            self->population, self->counts.msgs, seconds * 1e3,
            (double) self->counts.msgs / seconds, self->counts.errors,
            self->counts.lost);
    fflush (stdout);
    int failed = self->counts.errors > 0 || self->counts.lost > 0;
    memset (&self->counts, 0, sizeof (self->counts));
    return failed ? -1 : 0;
}

/*  Arms timer to fire at monotonic time at_ns, but no sooner than
    PACE_MIN_NS from now, so that paced sends go out in small bursts
    instead of one wake-up per message.  */
static void
s_arm (int timer, uint64_t at_ns)
{
    uint64_t soonest = s_now_ns () + PACE_MIN_NS;
    if (at_ns < soonest)
        at_ns = soonest;
    struct itimerspec spec = { { 0, 0 },
                               { (time_t) (at_ns / 1000000000ull),
                                 (long) (at_ns % 1000000000ull) } };
    timerfd_settime (timer, TFD_TIMER_ABSTIME, &spec, NULL);
}

/*  Sends the messages due by now at the paced rate.  A message that came
    due while every window was full is timed from when it was due, so a
    stalled registry cannot hide its stall by slowing the generator
    (coordinated omission); one sent late only because the generator
    slept between bursts is timed from its send.  */
static int
s_send_paced (loadgen_t *self, uint64_t started, uint64_t interval_ns,
              uint64_t *sent, bool *stalled, uint32_t *turn)
{
    uint64_t now = s_now_ns ();
    uint64_t due = (now - started) / interval_ns + 1;
    while (*sent < due) {
        conn_t *conn = s_free_conn (self, turn);
        if (!conn) {
            *stalled = true;
            return 0;
        }
        uint64_t since = *stalled ? started + *sent * interval_ns : now;
        if (s_send_touch (self, conn, since) != 0)
            return -1;
        (*sent)++;
    }
    *stalled = false;
    return 0;
}

static int
s_send_unpaced (loadgen_t *self, uint32_t *turn)
{
    conn_t *conn;
    uint64_t now = s_now_ns ();
    while ((conn = s_free_conn (self, turn)))
        if (s_send_touch (self, conn, now) != 0)
            return -1;
    return 0;
}

/*  Emits the timeline rows that are due.  */
static void
s_tick_clock (loadgen_t *self, uint64_t started, uint64_t *next_row)
{
    uint64_t now = s_now_ns ();
    while (now >= *next_row) {
        s_timeline_row (self, *next_row - started, TIMELINE_NS);
        *next_row += TIMELINE_NS;
    }
}

/*  Touches for duration_ms, paced when rate is set.  Returns the time
    span the acknowledged ids count over, in ns, or 0 on a failure.  */
static uint64_t
s_touch_run (loadgen_t *self, int64_t duration_ms, int64_t timeout_ms)
{
    int timer = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (timer < 0)
        return 0;
    uint64_t interval_ns = self->rate
                               ? 1000000000ull * self->ids_per_touch
                                     / self->rate
                               : 0;
    if (self->rate && interval_ns == 0)
        interval_ns = 1;

    uint64_t started = s_now_ns ();
    uint64_t end = started + (uint64_t) duration_ms * 1000000ull;
    uint64_t next_row = started + TIMELINE_NS;
    uint64_t sent = 0;
    bool stalled = false;
    uint32_t turn = 0;
    int rc = 0;
    while (rc == 0 && !s_stop && s_now_ns () < end) {
        if (interval_ns) {
            rc = s_send_paced (self, started, interval_ns, &sent, &stalled,
                               &turn);
            s_arm (timer, started + sent * interval_ns);
        }
        else
            rc = s_send_unpaced (self, &turn);
        if (rc == 0)
            rc = s_poll (self, 100, interval_ns ? timer : -1, true) < 0;
        s_tick_clock (self, started, &next_row);
    }
    close (timer);
    if (rc != 0)
        return 0;
    uint64_t finished = s_drain (self, timeout_ms, true);
    return finished > started ? finished - started : 1;
}

static void
s_report (loadgen_t *self, uint64_t span_ns)
{
    histogram_t *total = &self->total;
    histogram_t *marked = &self->marked;
    uint64_t end = s_mark_end_ns == UINT64_MAX ? s_now_ns () : s_mark_end_ns;
    double marked_ms = s_mark_start_ns ? (double) (end - s_mark_start_ns) / 1e6
                                       : 0;
    double seconds = (double) span_ns / 1e9;
    printf ("mode=touch connections=%u ids_per_touch=%u window=%u "
            "rate=%" PRIu64 " elapsed_ms=%.0f msgs=%" PRIu64
            " ids=%" PRIu64 " ids_per_s=%.0f p50_us=%.1f p90_us=%.1f "
            "p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%" PRIu64
            " unknown=%" PRIu64 " lost=%" PRIu64,
            self->conn_count, self->ids_per_touch, self->window, self->rate,
            seconds * 1e3, self->counts.msgs, self->counts.ids,
            (double) self->counts.ids / seconds,
            (double) histogram_percentile (total, 50) / 1e3,
            (double) histogram_percentile (total, 90) / 1e3,
            (double) histogram_percentile (total, 99) / 1e3,
            (double) histogram_percentile (total, 99.9) / 1e3,
            (double) total->max / 1e3, self->counts.errors,
            self->counts.unknown, self->counts.lost);
    printf (" marked_ms=%.0f marked_ids=%" PRIu64 " marked_p50_us=%.1f "
            "marked_p99_us=%.1f marked_max_us=%.1f unmarked_p99_us=%.1f\n",
            marked_ms, self->marked_ids,
            (double) histogram_percentile (marked, 50) / 1e3,
            (double) histogram_percentile (marked, 99) / 1e3,
            (double) marked->max / 1e3,
            (double) histogram_percentile (&self->unmarked, 99) / 1e3);
}

/*  Sends one touch of the first client and waits for the first answer,
    whatever it says: a registry that answers is serving.  */
static int
s_probe (loadgen_t *self, uint64_t since_ms, int64_t timeout_ms)
{
    if (since_ms == 0)
        since_ms = s_wall_ms ();
    self->touch_ids = 1;
    self->ids_per_touch = 1;
    if (s_alloc_rings (self, 1) != 0 || s_encode_touches (self) != 0
        || s_send_touch (self, &self->conns[0], s_now_ns ()) != 0)
        return -1;

    uint64_t deadline = s_now_ns () + (uint64_t) timeout_ms * 1000000ull;
    while (self->counts.msgs == 0 && !s_stop && s_now_ns () < deadline)
        if (s_poll (self, 10, -1, true) < 0)
            return -1;
    if (self->counts.msgs == 0) {
        printf ("mode=probe ready_ms=-1 error=timeout\n");
        return -1;
    }
    printf ("mode=probe ready_ms=%" PRIu64 " reply=%s\n",
            s_wall_ms () - since_ms,
            self->counts.errors ? "error" : "result");
    return 0;
}

/*  Reads the settings into self.  Returns 0, or -1 with the reason
    printed.  */
static int
s_configure (loadgen_t *self, settings_t *settings)
{
    self->settings = settings;
    log_set_level (settings_log_level (settings, "log-level"));
    self->conn_count = (uint32_t) settings_uint (settings, "connections");
    self->ids_per_touch = (uint32_t) settings_uint (settings,
                                                    "ids-per-touch");
    self->rate = settings_uint (settings, "rate");
    self->population = settings_uint (settings, "population");
    self->touch_ids = settings_uint (settings, "touch-ids");
    if (self->touch_ids == 0 || self->touch_ids > self->population)
        self->touch_ids = self->population;
    snprintf (self->node, sizeof self->node, "%s",
              settings_string (settings, "node"));

    const char *path = settings_string (settings, "timeline");
    if (path) {
        self->timeline = fopen (path, "w");
        if (!self->timeline) {
            fprintf (stderr, "%s: cannot write timeline %s: %s\n", PROGRAM,
                     path, strerror (errno));
            return -1;
        }
        fprintf (self->timeline, "t_ms\twall_ms\tids_per_s\tp50_us\t"
                                 "p99_us\tmax_us\tmarked\n");
    }
    return 0;
}

static int
s_touch (loadgen_t *self)
{
    settings_t *settings = self->settings;
    int64_t duration_ms = settings_duration (settings, "duration");
    int64_t timeout_ms = settings_duration (settings, "timeout");
    uint32_t window = (uint32_t) settings_uint (settings, "window");
    if (s_encode_touches (self) != 0 || s_alloc_rings (self, window) != 0)
        return -1;

    //  Each connection starts its walk at its own place, and each
    //  process (by --start) at another
    uint64_t start = settings_uint (settings, "start");
    for (uint32_t index = 0; index < self->conn_count; index++)
        self->conns[index].cursor = (start + index * self->body_count
                                              / self->conn_count)
                                    % self->body_count;

    uint64_t span_ns = s_touch_run (self, duration_ms, timeout_ms);
    if (span_ns == 0)
        return -1;
    s_report (self, span_ns);
    return 0;
}

static void
s_destroy (loadgen_t *self)
{
    for (uint32_t index = 0; self->conns && index < self->conn_count;
         index++) {
        zmq_close (self->conns[index].socket);
        free (self->conns[index].ring);
    }
    free (self->conns);
    if (self->context)
        zmq_ctx_term (self->context);
    if (self->timeline)
        fclose (self->timeline);
    free (self->arena);
    free (self->bodies);
    settings_destroy (&self->settings);
}

static void
s_handle_signals (void)
{
    struct sigaction action = { .sa_handler = s_on_signal };
    sigemptyset (&action.sa_mask);
    sigaction (SIGUSR1, &action, NULL);
    sigaction (SIGUSR2, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

int
main (int argc, char **argv)
{
    log_init ("loadgen");
    char error[1024];
    settings_t *settings = settings_load (PROGRAM, "loadgen", s_settings,
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

    static loadgen_t self;
    s_handle_signals ();
    int rc = s_configure (&self, settings);
    if (rc == 0 && settings_bool (settings, "probe")) {
        self.conn_count = 1;
        rc = s_connect (&self, settings_string (settings, "commands"));
        if (rc == 0)
            rc = s_probe (&self, settings_uint (settings, "since-ms"),
                          settings_duration (settings, "timeout"));
    }
    else if (rc == 0) {
        rc = s_connect (&self, settings_string (settings, "commands"));
        if (rc == 0 && settings_bool (settings, "register"))
            rc = s_register_population (
                &self,
                (uint32_t) settings_uint (settings, "register-window"),
                settings_duration (settings, "timeout"));
        if (rc == 0 && settings_duration (settings, "duration") > 0)
            rc = s_touch (&self);
    }
    s_destroy (&self);
    return rc == 0 ? 0 : 1;
}

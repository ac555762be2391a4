/*  subscription.c: lapse_sub_t, removal events in seq order, each once.

    Live events from the SUB socket are only hints: the registry's
    "events" command is the authority.  Every event received goes into a
    queue ordered by seq; the first one is delivered once nothing before
    it can be missing.  known_seq is the promise behind that: every event
    in scope with a seq up to known_seq has been delivered, is queued, or
    was reported lost.  So the first queued event can be delivered when

        following every node:  seq <= known_seq + 1  (seqs are gapless)
        following one node:    prev <= known_seq     (prev is the seq of
                               the node's previous event, so none of the
                               node's events lies between prev and seq)

    A replay requests the events after known_seq.  The page it returns
    holds every event in scope from there up to the registry's newest
    (or up to the page's last when the page is full, and then the next
    page is asked for at once), so known_seq moves up to that point.  A
    replay runs at start, when the first queued event cannot be
    delivered (a live event was missed), and after replay_interval_ms
    without any traffic, since an event missed at the tail is revealed
    by no later one.  Replays are asynchronous, so a call never waits
    longer than its timeout, whether the registry answers or not.

    When a page starts above known_seq + 1, the registry no longer
    retains the events in between: a gap marker goes into the queue, so
    that the loss is reported in its place in seq order.

    A page whose last_seq is below the known_seq its request was sent
    with comes from a registry whose log started again (its store was
    deleted or replaced): it numbers new events with seqs already
    delivered.  Nothing tells those apart from the events delivered
    before, so the subscription stops for good and says why.  The
    check is only as good as its timing: a registry that has already
    numbered past known_seq by the next replay looks the same as the
    old one.  Live events at or below known_seq therefore do not count
    as traffic, so that they do not put off the idle replay.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "event_queue.h"
#include "lapse.h"

#define SUB_REPLAY_INTERVAL_MS 2000
#define SUB_REPLAY_TIMEOUT_MS LAPSE_DEFAULT_TIMEOUT_MS
#define SUB_RETRY_MS 1000       /* after a replay that failed */
#define SUB_RECHECK_MS 100      /* between replays for a missed event */

/*  Live events queued beyond known_seq at most.  More are dropped and
    recovered by replay, so a flood during a long catch-up cannot use
    unbounded memory.  */
#define SUB_QUEUED_MAX (10 * MSG_PAGE_MAX)
#define SUB_RCVHWM 10000

struct lapse_sub_t {
    channel_t *channel;
    zsock_t *sub;
    char node[MSG_NODE_MAX + 1];    /* empty when following every node */
    event_queue_t *queue;
    queue_item_t *current;          /* storage of the event last returned */
    uint64_t last_seq;
    uint64_t known_seq;
    bool replay_needed;             /* a replay is due at next_replay_at */
    int64_t next_replay_at;         /* monotonic ms */
    int64_t idle_since;             /* last replay or live event */
    uint64_t replay_since;          /* of the replay in flight */
    int64_t replay_sent_at;
    int replay_interval_ms;
    bool gap_from_start;            /* report events lost before seq 1 */
    bool gap_reported;
    uint64_t gap_first;
    uint64_t gap_last;
    bool backwards;                 /* the registry's log started again */
    uint64_t backwards_registry;    /* its last_seq that showed it */
    uint64_t backwards_reached;     /* known_seq the replay was sent with */
    char error[MSG_TEXT_MAX];
};

static void
s_set_error (lapse_sub_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_set_error (lapse_sub_t *self, const char *format, ...)
{
    va_list args;

    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

/*  Creates the SUB socket for the topic of node (every node when
    empty).  */
static zsock_t *
s_sub_new (const char *endpoint, const char *node)
{
    char topic[sizeof MSG_TOPIC_EVICTED + MSG_NODE_MAX];
    snprintf (topic, sizeof topic, "%s%s", MSG_TOPIC_EVICTED, node);

    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (!sub)
        return NULL;
    zsock_set_linger (sub, 0);
    zsock_set_maxmsgsize (sub, CHANNEL_FRAME_MAX);
    zsock_set_rcvhwm (sub, SUB_RCVHWM);
    zsock_set_subscribe (sub, topic);
    if (zsock_connect (sub, "%s", endpoint) == -1) {
        zsock_destroy (&sub);
        return NULL;
    }
    return sub;
}

lapse_sub_t *
lapse_sub_new (const char *commands_endpoint, const char *events_endpoint,
               const char *node, uint64_t since)
{
    if (!events_endpoint || (node && !msg_node_is_valid (msg_str (node))))
        return NULL;

    lapse_sub_t *self = (lapse_sub_t *) calloc (1, sizeof (lapse_sub_t));
    if (!self)
        return NULL;
    if (node)
        snprintf (self->node, sizeof self->node, "%s", node);
    self->queue = event_queue_new ();
    if (!self->queue)
        goto fail_queue;
    self->channel = channel_new (commands_endpoint);
    if (!self->channel)
        goto fail_channel;
    self->sub = s_sub_new (events_endpoint, self->node);
    if (!self->sub)
        goto fail_sub;

    self->last_seq = since;
    self->known_seq = since;
    self->replay_needed = true;
    self->idle_since = zclock_mono ();
    self->replay_interval_ms = SUB_REPLAY_INTERVAL_MS;
    return self;

fail_sub:
    channel_destroy (&self->channel);
fail_channel:
    event_queue_destroy (&self->queue);
fail_queue:
    free (self);
    return NULL;
}

void
lapse_sub_destroy (lapse_sub_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    lapse_sub_t *self = *self_p;
    zsock_destroy (&self->sub);
    channel_destroy (&self->channel);
    event_queue_destroy (&self->queue);
    free (self->current);
    free (self);
    *self_p = NULL;
}

void
lapse_sub_set_replay_interval (lapse_sub_t *self, int interval_ms)
{
    self->replay_interval_ms = interval_ms < 1 ? 1 : interval_ms;
}

void
lapse_sub_set_gap_from_start (lapse_sub_t *self, bool report)
{
    self->gap_from_start = report;
}

bool
lapse_sub_gap (lapse_sub_t *self, uint64_t *first, uint64_t *last)
{
    if (!self->gap_reported)
        return false;
    if (first)
        *first = self->gap_first;
    if (last)
        *last = self->gap_last;
    return true;
}

uint64_t
lapse_sub_last_seq (lapse_sub_t *self)
{
    return self->last_seq;
}

const char *
lapse_sub_error (lapse_sub_t *self)
{
    return self->error;
}

bool
lapse_sub_backwards (lapse_sub_t *self, uint64_t *registry_last_seq,
                     uint64_t *reached_seq)
{
    if (!self->backwards)
        return false;
    if (registry_last_seq)
        *registry_last_seq = self->backwards_registry;
    if (reached_seq)
        *reached_seq = self->backwards_reached;
    return true;
}

/*  Returns true when the event is in scope: every node, or the node
    followed (the topic prefix also matches longer node names).  */
static bool
s_in_scope (lapse_sub_t *self, const msg_event_t *event)
{
    return self->node[0] == '\0' || msg_str_eq (event->node, self->node);
}

/*  Returns true when nothing in scope can lie between the events up to
    known and the queued item.  */
static bool
s_follows (lapse_sub_t *self, const queue_item_t *item, uint64_t known)
{
    if (item->is_gap)
        return true;
    if (self->node[0] == '\0')
        return item->event.seq <= known + 1;
    return item->event.prev <= known;
}

/*  Takes the first queued item when it can be delivered.  Returns 1 with
    an event, 2 for a gap, 0 when there is none to take.  */
static int
s_take (lapse_sub_t *self, msg_event_t *event)
{
    queue_item_t *item = event_queue_at (self->queue, 0);
    if (!item)
        return 0;
    if (!s_follows (self, item, self->known_seq)) {
        self->replay_needed = true;
        return 0;
    }

    event_queue_pop (self->queue);
    if (item->is_gap) {
        self->gap_reported = true;
        self->gap_first = item->event.seq;
        self->gap_last = item->gap_last;
        self->last_seq = item->gap_last;
        if (self->known_seq < item->gap_last)
            self->known_seq = item->gap_last;
        free (item);
        return 2;
    }
    self->current = item;
    *event = item->event;
    self->last_seq = item->event.seq;
    if (self->known_seq < item->event.seq)
        self->known_seq = item->event.seq;
    return 1;
}

/*  Queues one live event unless it is known already.  */
static void
s_accept_live (lapse_sub_t *self, const msg_event_t *event)
{
    if (!s_in_scope (self, event) || event->seq <= self->known_seq)
        return;
    self->idle_since = zclock_mono ();
    if (event_queue_size (self->queue) >= SUB_QUEUED_MAX) {
        self->replay_needed = true;
        return;
    }
    event_queue_insert (self->queue, event);
}

/*  Reads every message waiting on the SUB socket.  A message that is not
    a valid event is dropped: the next replay covers whatever it was.
    Only a new event counts as traffic (see s_accept_live).  */
static void
s_read_live (lapse_sub_t *self)
{
    while (zsock_events (self->sub) & ZMQ_POLLIN) {
        zmsg_t *message = zmsg_recv (self->sub);
        if (!message)
            return;

        zframe_t *body = zmsg_last (message);
        msg_t decoded;
        msg_failure_t failure;
        memset (&decoded, 0, sizeof decoded);
        if (zmsg_size (message) == 2
            && msg_decode (zframe_data (body), zframe_size (body), &decoded,
                           &failure) == 0
            && decoded.type == MSG_EVENT)
            s_accept_live (self, &decoded.u.event);
        msg_release (&decoded);
        zmsg_destroy (&message);
    }
}

/*  Returns the highest seq up to which every event in scope would be
    known after delivering the queued items that can be delivered now.  */
static uint64_t
s_known_after_queue (lapse_sub_t *self)
{
    uint64_t known = self->known_seq;
    queue_item_t *item;

    for (size_t index = 0; (item = event_queue_at (self->queue, index));
         index++) {
        if (!s_follows (self, item, known))
            break;
        uint64_t seq = item->is_gap ? item->gap_last : item->event.seq;
        if (known < seq)
            known = seq;
    }
    return known;
}

/*  Queues a gap marker when the registry no longer retains events
    between what is known and the page's first_seq.  Queued events in the
    lost range are dropped with it, so that one gap covers them all.  */
static void
s_check_retention (lapse_sub_t *self, const msg_result_t *page)
{
    /*  first_seq is 0 when the registry retains no event at all.  Then
        the oldest seq that can still come is the one after its newest.  */
    uint64_t first_seq = page->first_seq > 0 ? page->first_seq
                                             : page->last_seq + 1;

    /*  A subscription from seq 0 requests whatever is retained, unless
        its caller set gap_from_start to learn of the events before.  */
    if (self->known_seq == 0 && !self->gap_from_start)
        return;
    uint64_t known = s_known_after_queue (self);
    if (first_seq <= known + 1)
        return;

    /*  Following one node, the first event's prev shows whether any of
        that node's events were among those lost.  An empty page does not
        show it, so the gap is reported all the same.  */
    if (self->node[0] != '\0' && page->events_count > 0
        && page->events[0].prev <= known)
        return;

    event_queue_drop_range (self->queue, known + 1, first_seq - 1);
    event_queue_insert_gap (self->queue, known + 1, first_seq - 1);
    self->known_seq = first_seq - 1;
}

/*  Queues the events of a replay page and moves known_seq past them.  */
static void
s_apply_page (lapse_sub_t *self, const msg_result_t *page)
{
    s_check_retention (self, page);

    uint64_t page_last = 0;
    for (uint32_t index = 0; index < page->events_count; index++) {
        const msg_event_t *event = &page->events[index];
        if (!s_in_scope (self, event) || event->seq <= self->replay_since)
            continue;
        page_last = event->seq;
        if (event->seq > self->last_seq)
            event_queue_insert (self->queue, event);
    }

    /*  A full page may stop short of the registry's newest event, so
        only its own last seq is known, and the next page is due now.  */
    uint64_t covered = page->last_seq > page_last ? page->last_seq
                                                  : page_last;
    if (page->events_count >= MSG_PAGE_MAX) {
        covered = page_last;
        self->replay_needed = true;
        self->next_replay_at = 0;
    }
    if (self->known_seq < covered)
        self->known_seq = covered;
}

/*  Sends a replay request when one is due, and gives up on one that has
    waited too long.  Returns -1 when a replay failed.  */
static int
s_service_replay (lapse_sub_t *self, int64_t now)
{
    if (channel_waiting (self->channel)) {
        if (now - self->replay_sent_at < SUB_REPLAY_TIMEOUT_MS)
            return 0;
        s_set_error (self, "replay from %s timed out after %d ms; retrying",
                     channel_endpoint (self->channel),
                     SUB_REPLAY_TIMEOUT_MS);
        channel_reset (self->channel);
        self->replay_needed = true;
        self->next_replay_at = now + SUB_RETRY_MS;
        return -1;
    }

    bool idle = now - self->idle_since >= self->replay_interval_ms;
    if (!(self->replay_needed || idle) || now < self->next_replay_at)
        return 0;

    msg_t request = { .type = MSG_EVENTS };
    request.u.events.since = self->known_seq;
    request.u.events.limit = MSG_PAGE_MAX;
    request.u.events.node = msg_str (self->node[0] ? self->node : NULL);
    msg_failure_t failure;
    if (channel_send (self->channel, &request, &failure) == -1) {
        s_set_error (self, "replay failed: %s; retrying", failure.message);
        self->next_replay_at = now + SUB_RETRY_MS;
        return -1;
    }
    self->replay_needed = false;
    self->replay_since = self->known_seq;
    self->replay_sent_at = now;
    self->next_replay_at = now + SUB_RECHECK_MS;
    return 0;
}

/*  Handles the reply to the replay in flight, if it has arrived.
    Returns -1 when the registry rejected the replay.  */
static int
s_read_replay (lapse_sub_t *self)
{
    if (!channel_waiting (self->channel))
        return 0;

    msg_t reply;
    msg_failure_t failure;
    int rc = channel_receive (self->channel, &reply, &failure);
    if (rc == 0)
        return 0;

    int64_t now = zclock_mono ();
    self->idle_since = now;
    if (rc == -1) {
        s_set_error (self, "replay failed: %s; retrying", failure.message);
        self->replay_needed = true;
        self->next_replay_at = now + SUB_RETRY_MS;
        return -1;
    }
    /*  Every event up to replay_since was committed before the request
        left, so the registry that answers with less is not the one
        that numbered them.  */
    if (reply.u.result.last_seq < self->replay_since) {
        self->backwards = true;
        self->backwards_registry = reply.u.result.last_seq;
        self->backwards_reached = self->replay_since;
        s_set_error (self, "registry event sequence went backwards: its "
                     "last seq is %" PRIu64 ", below seq %" PRIu64 " that "
                     "this subscription had reached; its store was "
                     "replaced or reset", self->backwards_registry,
                     self->backwards_reached);
        msg_release (&reply);
        return -1;
    }

    /*  The page settles whatever made this replay due.  s_take sets
        replay_needed again if the first queued event still cannot be
        delivered.  */
    self->replay_needed = false;
    s_apply_page (self, &reply.u.result);
    msg_release (&reply);
    return 0;
}

/*  Returns how long to poll: until the deadline, the replay timeout or
    the next replay, whichever comes first.  */
static int64_t
s_poll_ms (lapse_sub_t *self, int64_t now, int64_t deadline)
{
    int64_t until = deadline;

    if (channel_waiting (self->channel)) {
        int64_t expiry = self->replay_sent_at + SUB_REPLAY_TIMEOUT_MS;
        until = expiry < until ? expiry : until;
    }
    else {
        int64_t due = self->replay_needed
                          ? self->next_replay_at
                          : self->idle_since + self->replay_interval_ms;
        if (due < self->next_replay_at)
            due = self->next_replay_at;
        until = due < until ? due : until;
    }
    return until > now ? until - now : 0;
}

/*  Waits for traffic on either socket for up to wait_ms and reads it.
    Returns -1 when interrupted or when a replay was rejected.  */
static int
s_poll (lapse_sub_t *self, int64_t wait_ms)
{
    zmq_pollitem_t items[2] = {
        { zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0 },
        { NULL, 0, ZMQ_POLLIN, 0 },
    };
    int count = 1;
    zsock_t *dealer = channel_socket (self->channel);
    if (dealer) {
        items[1].socket = zsock_resolve (dealer);
        count = 2;
    }

    if (zmq_poll (items, count, (long) wait_ms) == -1 && zsys_interrupted) {
        s_set_error (self, "interrupted by a signal");
        return -1;
    }
    s_read_live (self);
    return s_read_replay (self);
}

int
lapse_sub_next (lapse_sub_t *self, msg_event_t *event, int timeout_ms)
{
    int64_t deadline = zclock_mono () + (timeout_ms > 0 ? timeout_ms : 0);
    bool polled = false;

    free (self->current);
    self->current = NULL;
    self->gap_reported = false;
    if (self->backwards)
        return -1;
    while (true) {
        int rc = s_take (self, event);
        if (rc != 0)
            return rc;

        int64_t now = zclock_mono ();
        if (polled && now >= deadline)
            return 0;
        if (s_service_replay (self, now) == -1)
            return -1;
        if (s_poll (self, s_poll_ms (self, now, deadline)) == -1)
            return -1;
        polled = true;
    }
}

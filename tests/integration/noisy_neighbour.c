/*  One hostile peer floods every registry socket for several seconds
    while two well-behaved API nodes register and touch their clients.

    The flood: garbage command bodies sent without reading the replies,
    messages without the empty delimiter or with many frames, oversized
    messages, malformed ticks, garbage subscriptions on the event socket,
    and bytes that are not ZeroMQ at all on each endpoint.  Meanwhile a
    second raw peer sends one garbage command at a time and must get an
    error reply to each.

    Afterwards the nodes saw no failed request, and none of their clients
    was evicted, although sweeps ran: each is touched five times a second
    against a stale-after of 2 s.  The registry is still serving.  Its
    stats count the bad commands, the malformed ticks and the replies it
    dropped, and its log has a bounded number of warnings about them.
    Oversized messages are dropped by libzmq, which closes the sender's
    connection before the registry sees anything, so no registry counter
    covers them.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "crash_checks.h"
#include "harness.h"

#define NODE_COUNT 2
#define NODE_CLIENTS 200
#define FLOOD_MS 6000
#define MAX_MESSAGE_SIZE 65536
#define OVERSIZE_BYTES (MAX_MESSAGE_SIZE + 4096)
#define GARBAGE_MAX 300
#define CHECK_TIMEOUT_MS 5000
#define START_MS 10000
/*  Warning lines of one kind in the registry's log at most: 10 a second
    over the flood, with room for the seconds around it.  */
#define WARNING_LINES_MAX (10 * (FLOOD_MS / 1000 + 4))

/*  How often, in flood rounds, each slower kind of abuse is repeated.  */
#define OVERSIZE_EVERY 50
#define RAW_BYTES_EVERY 10
#define CHECK_EVERY 5

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *scheduler;
    proc_t *nodes[NODE_COUNT];
    lapse_t *operator;
    zsock_t *flooder;       /* DEALER that never reads its replies */
    zsock_t *checker;       /* DEALER that reads each reply */
    zsock_t *ticker;        /* PUB to the tick socket */
    zsock_t *subscriber;    /* XSUB to the event socket */
} world_t;

/*  What the flood sent.  */
typedef struct {
    uint64_t commands;      /* garbage commands the flooder queued */
    uint64_t checked;       /* garbage commands with an error reply */
    uint64_t ticks;         /* malformed ticks */
    uint64_t subscriptions;
    uint64_t oversized;
    uint64_t raw_connections;
} flood_t;

static const char *const s_node_names[NODE_COUNT] = { "node-a", "node-b" };

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("noisy_neighbour");
    if (!world->harness)
        return -1;
    world->operator = harness_client (world->harness, NULL);
    return world->operator ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    zsock_destroy (&world->flooder);
    zsock_destroy (&world->checker);
    zsock_destroy (&world->ticker);
    zsock_destroy (&world->subscriber);
    lapse_destroy (&world->operator);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

static void
s_start_world (world_t *world)
{
    harness_t *harness = world->harness;
    char size[16];
    snprintf (size, sizeof (size), "%d", MAX_MESSAGE_SIZE);
    world->registry = harness_start_registry (
        harness, "registry", NULL, "--stale-after", "2s", "--tick-min-gap",
        "0ms", "--max-message-size", size, NULL);
    assert_non_null (world->registry);
    world->scheduler = harness_spawnl (harness, "scheduler",
                                       LAPSE_SCHEDULER_BIN, NULL, "--ticks",
                                       harness->ticks, "--interval", "300ms",
                                       NULL);
    assert_non_null (world->scheduler);

    char clients[16];
    snprintf (clients, sizeof (clients), "%d", NODE_CLIENTS);
    for (int index = 0; index < NODE_COUNT; index++) {
        world->nodes[index] = harness_spawnl (
            harness, s_node_names[index], LAPSE_RECORDING_NODE_BIN, NULL,
            "--commands", harness->commands, "--node", s_node_names[index],
            "--clients", clients, "--register-interval", "0",
            "--touch-interval", "200", "--timeout", "5000", NULL);
        assert_non_null (world->nodes[index]);
    }

    //  The flood only counts once sweeps could evict someone
    assert_eventually (harness_stat (world->operator, "clients")
                           == NODE_COUNT * NODE_CLIENTS,
                       START_MS);
    assert_int_equal (harness_wait_past_grace (world->operator, START_MS),
                      0);
}

static void
s_open_flood_sockets (world_t *world)
{
    harness_t *harness = world->harness;
    world->flooder = zsock_new_dealer (harness->commands);
    world->checker = zsock_new_dealer (harness->commands);
    world->ticker = zsock_new (ZMQ_PUB);
    world->subscriber = zsock_new (ZMQ_XSUB);
    assert_non_null (world->flooder);
    assert_non_null (world->checker);
    assert_non_null (world->ticker);
    assert_non_null (world->subscriber);
    assert_int_equal (zsock_connect (world->ticker, "%s", harness->ticks), 0);
    assert_int_equal (zsock_connect (world->subscriber, "%s",
                                     harness->events),
                      0);
    zsock_set_rcvtimeo (world->checker, CHECK_TIMEOUT_MS);
    zsock_set_linger (world->flooder, 0);
    zsock_set_linger (world->ticker, 0);
    zsock_set_linger (world->subscriber, 0);
}

/*  Fills buffer with up to max bytes of one kind of garbage and returns
    its length: random bytes, a msgpack map cut short, a msgpack array
    or string header claiming 4 GB, or nothing at all.  */
static size_t
s_garbage (uint8_t *buffer, size_t max)
{
    size_t length = (size_t) crash_random (1, (int) max);
    for (size_t index = 0; index < length; index++)
        buffer[index] = (uint8_t) crash_random (0, 255);

    static const uint8_t claims[][5] = {
        { 0xdf, 0xff, 0xff, 0xff, 0xff },   /* map32 of 4G entries */
        { 0xdd, 0xff, 0xff, 0xff, 0xff },   /* array32 of 4G items */
        { 0xdb, 0xff, 0xff, 0xff, 0xff },   /* str32 of 4 GB */
        { 0x83, 0xa1, 0x76, 0x01, 0xa4 },   /* {"v":1, then cut */
    };
    int kind = crash_random (0, 5);
    if (kind < 4) {
        size_t claim = sizeof (claims[kind]);
        memcpy (buffer, claims[kind], length < claim ? length : claim);
    }
    else if (kind == 5)
        length = 0;
    return length;
}

/*  Sends one message of frames without blocking; a full queue drops it.
    Returns true when it was queued.  */
static bool
s_send_frames (zsock_t *socket, uint8_t frames[][GARBAGE_MAX],
               const size_t *sizes, int count)
{
    void *handle = zsock_resolve (socket);
    for (int index = 0; index < count; index++) {
        int flags = ZMQ_DONTWAIT | (index + 1 < count ? ZMQ_SNDMORE : 0);
        if (zmq_send (handle, frames[index], sizes[index], flags) < 0)
            return false;
    }
    return true;
}

/*  Queues one garbage command: [empty][garbage], or a message of one to
    six garbage frames with no delimiter.  */
static void
s_flood_command (world_t *world, flood_t *flood)
{
    static uint8_t frames[6][GARBAGE_MAX];
    size_t sizes[6] = { 0 };
    int count = crash_random (1, 6);
    for (int index = 0; index < count; index++)
        sizes[index] = s_garbage (frames[index], GARBAGE_MAX);
    if (crash_random (0, 1) == 0) {
        count = 2;
        sizes[0] = 0;
    }
    flood->commands += s_send_frames (world->flooder, frames, sizes, count);
}

/*  Sends [empty][garbage] and expects an error reply.  */
static void
s_check_command (world_t *world, flood_t *flood)
{
    uint8_t body[GARBAGE_MAX];
    size_t size = s_garbage (body, GARBAGE_MAX);
    zmsg_t *request = zmsg_new ();
    assert_non_null (request);
    zmsg_addmem (request, NULL, 0);
    zmsg_addmem (request, body, size);
    assert_int_equal (zmsg_send (&request, world->checker), 0);

    zmsg_t *reply = zmsg_recv (world->checker);
    assert_non_null (reply);
    assert_int_equal (zmsg_size (reply), 2);
    zframe_t *answer = zmsg_last (reply);
    msg_t msg = { 0 };
    msg_failure_t failure;
    assert_int_equal (msg_decode (zframe_data (answer), zframe_size (answer),
                                  &msg, &failure),
                      0);
    assert_int_equal (msg.type, MSG_ERROR);
    msg_release (&msg);
    zmsg_destroy (&reply);
    flood->checked++;
}

/*  Publishes one malformed tick: garbage after the tick topic, the topic
    alone, or extra frames.  */
static void
s_flood_tick (world_t *world, flood_t *flood)
{
    static uint8_t frames[4][GARBAGE_MAX];
    size_t sizes[4] = { 0 };
    int count = crash_random (1, 4);
    for (int index = 0; index < count; index++)
        sizes[index] = s_garbage (frames[index], GARBAGE_MAX);
    memcpy (frames[0], MSG_TOPIC_TICK, strlen (MSG_TOPIC_TICK));
    if (sizes[0] < strlen (MSG_TOPIC_TICK))
        sizes[0] = strlen (MSG_TOPIC_TICK);
    if (count == 2 && crash_random (0, 1))
        sizes[0] = strlen (MSG_TOPIC_TICK);
    flood->ticks += s_send_frames (world->ticker, frames, sizes, count);
}

/*  Sends one subscription message whose first byte is random, so that
    some are neither a subscribe (1) nor an unsubscribe (0).  */
static void
s_flood_subscription (world_t *world, flood_t *flood)
{
    static uint8_t frames[1][GARBAGE_MAX];
    size_t sizes[1] = { s_garbage (frames[0], 64) };
    flood->subscriptions += s_send_frames (world->subscriber, frames, sizes,
                                           1);
}

/*  Sends a message larger than the registry accepts on each socket;
    libzmq closes the connection, so each goes on a socket of its own.  */
static void
s_flood_oversized (world_t *world, flood_t *flood)
{
    harness_t *harness = world->harness;
    static uint8_t big[OVERSIZE_BYTES];
    memcpy (big, MSG_TOPIC_TICK, strlen (MSG_TOPIC_TICK));
    const char *endpoints[] = { harness->commands, harness->ticks,
                                harness->events };
    int types[] = { ZMQ_DEALER, ZMQ_PUB, ZMQ_XSUB };
    for (int index = 0; index < 3; index++) {
        zsock_t *socket = zsock_new (types[index]);
        assert_non_null (socket);
        zsock_set_linger (socket, 200);
        assert_int_equal (zsock_connect (socket, "%s", endpoints[index]), 0);
        big[0] = types[index] == ZMQ_XSUB ? 1 : big[0];
        if (zmq_send (zsock_resolve (socket), big, sizeof (big),
                      ZMQ_DONTWAIT) >= 0)
            flood->oversized++;
        zsock_destroy (&socket);
    }
}

/*  Connects to each ipc endpoint with a plain Unix socket and writes
    bytes that are not a ZeroMQ greeting.  */
static void
s_flood_raw_bytes (world_t *world, flood_t *flood)
{
    harness_t *harness = world->harness;
    const char *endpoints[] = { harness->commands, harness->ticks,
                                harness->events };
    uint8_t bytes[GARBAGE_MAX];
    for (int index = 0; index < 3; index++) {
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        snprintf (address.sun_path, sizeof (address.sun_path), "%s",
                  endpoints[index] + strlen ("ipc://"));
        int fd = socket (AF_UNIX, SOCK_STREAM, 0);
        assert_true (fd >= 0);
        if (connect (fd, (struct sockaddr *) &address, sizeof (address))
            == 0) {
            size_t size = s_garbage (bytes, GARBAGE_MAX);
            ssize_t written = write (fd, bytes, size);
            (void) written;
            flood->raw_connections++;
        }
        close (fd);
    }
}

static void
s_flood (world_t *world, flood_t *flood)
{
    int64_t end = harness_now_ms () + FLOOD_MS;
    for (uint64_t round = 0; harness_now_ms () < end; round++) {
        for (int index = 0; index < 20; index++) {
            s_flood_command (world, flood);
            s_flood_tick (world, flood);
            s_flood_subscription (world, flood);
        }
        if (round % CHECK_EVERY == 0)
            s_check_command (world, flood);
        if (round % RAW_BYTES_EVERY == 0)
            s_flood_raw_bytes (world, flood);
        if (round % OVERSIZE_EVERY == 0)
            s_flood_oversized (world, flood);
        harness_sleep_ms (1);
    }
    printf ("noisy_neighbour: sent %llu garbage commands (%llu answered one "
            "at a time), %llu malformed ticks, %llu subscriptions, "
            "%llu oversized messages, %llu raw connections\n",
            (unsigned long long) flood->commands,
            (unsigned long long) flood->checked,
            (unsigned long long) flood->ticks,
            (unsigned long long) flood->subscriptions,
            (unsigned long long) flood->oversized,
            (unsigned long long) flood->raw_connections);
}

/*  Stops a node and checks that every request it made succeeded and
    that all its clients are still registered.  */
static void
s_check_node (world_t *world, int index)
{
    proc_t *node = world->nodes[index];
    assert_int_equal (proc_stop (node, HARNESS_STOP_MS), 0);
    node_records_t records;
    assert_int_equal (node_records_load (node->out_path, &records), 0);
    assert_true (records.finished);
    if (records.errors > 0)
        print_error ("%s: %llu failed requests; see %s\n", node->name,
                     (unsigned long long) records.errors, node->out_path);
    assert_int_equal (records.errors, 0);
    assert_int_equal (records.count, NODE_CLIENTS);
    node_records_free (&records);
    assert_int_equal (harness_list (world->operator, s_node_names[index],
                                    NULL, NULL),
                      NODE_CLIENTS);
}

static void
s_check_stats (world_t *world, const flood_t *flood)
{
    lapse_t *operator = world->operator;
    uint64_t bad = harness_stat (operator, "bad_requests");
    uint64_t malformed = harness_stat (operator, "ticks_malformed");
    uint64_t dropped = harness_stat (operator, "replies_dropped");
    uint64_t sweeps = harness_stat (operator, "sweeps");
    printf ("noisy_neighbour: registry counted bad_requests=%llu "
            "ticks_malformed=%llu replies_dropped=%llu; sweeps=%llu\n",
            (unsigned long long) bad, (unsigned long long) malformed,
            (unsigned long long) dropped, (unsigned long long) sweeps);
    assert_int_not_equal (bad, UINT64_MAX);
    assert_true (bad >= flood->checked);
    assert_true (bad > flood->checked);
    assert_true (malformed > 0 && malformed != UINT64_MAX);
    assert_int_equal (harness_stat (operator, "evicted"), 0);

    //  The registry writes each kind of warning about bad input at most
    //  10 times a second, and counts the rest in the next line it writes
    const char *warnings[] = { "msg=\"bad request\"",
                               "msg=\"malformed tick dropped\"",
                               "msg=\"reply dropped\"" };
    for (size_t index = 0; index < 3; index++) {
        int lines = proc_log_count (world->registry, warnings[index]);
        printf ("noisy_neighbour: %d lines with %s\n", lines,
                warnings[index]);
        assert_true (lines > 0);
        assert_true (lines <= WARNING_LINES_MAX);
    }
}

static void
noisy_peer_harms_no_one (void **state)
{
    world_t *world = *state;
    crash_seed ("noisy_neighbour");
    s_start_world (world);
    s_open_flood_sockets (world);
    uint64_t sweeps = harness_stat (world->operator, "sweeps");

    flood_t flood = { 0 };
    s_flood (world, &flood);
    s_check_stats (world, &flood);
    assert_true (harness_stat (world->operator, "sweeps") > sweeps);
    for (int index = 0; index < NODE_COUNT; index++)
        s_check_node (world, index);
    assert_true (proc_running (world->registry));
    assert_int_equal (proc_stop (world->scheduler, HARNESS_STOP_MS), 0);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (noisy_peer_harms_no_one, s_setup,
                                         s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}

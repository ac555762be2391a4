/*  Subscribers that stop reading cannot slow the registry down or make
    it grow without bound, and get every event back by replay.

    slow_subscribers_do_not_stall_registry: a raw SUB socket with a tiny
    receive high-water mark that stops reading, and a lapsectl tail
    stopped with SIGSTOP, while one sweep publishes BULK_CLIENTS events.
    Every touch sent meanwhile gets its reply within a generous deadline.
    The latencies are printed, not asserted.  The registry's VmRSS stays
    under a bound derived from its event queue limit, and once resumed
    the tail prints every event once, in order.

    replay_past_retention_reports_gap: a subscriber that replays from
    before the oldest retained event is told which seqs were lost
    (lapse_sub_next returns 2 with the range) and then gets every
    retained event once.  The events are made older than the retention
    by moving their removal time back in the store file while the
    registry is stopped, so the registry's one-minute minimum retention
    stays as it is.

    Both tests write to the store file only while no registry runs.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"

/*  The registry's PUB socket queues at most QUEUE_EVENTS_MAX events
    per subscriber (EVENTS_SNDHWM in registry/main.c).  One event is two
    frames: a topic short enough to sit inside its 64-byte zmq_msg_t, and
    a body of about 150 bytes.  By estimate, a queued event costs the
    body's allocation once (libzmq counts references to a message sent
    to several pipes) plus 2 x 64 bytes per stopped subscriber, about 460
    bytes with the two stopped here.  This test measured about 350 bytes
    with libzmq 4.3.4.  RSS_PER_EVENT allows 600.  RSS_SLACK_KB covers
    the page cache of the store worker's connection, which fills during
    the sweep (16 MiB at most), and RSS_LIST_PER_CLIENT the sweep's list
    of stale clients: an 8-byte time, an offset and the id of each.

    The sweep publishes BULK_CLIENTS events, two and a half times the
    queue limit.  Queues that grew with every event would need about 85
    MB at the measured cost, over the 58 MB the bound allows them, while
    bounded ones stay near QUEUE_EVENTS_MAX x 350 bytes.  */
#define BULK_CLIENTS 250000
#define LIVE_CLIENTS 100
#define QUEUE_EVENTS_MAX 100000
#define RSS_PER_EVENT 600
#define RSS_SLACK_KB (16 * 1024)
#define RSS_LIST_PER_CLIENT 40

/*  Every touch must get its reply within this, although the registry
    replies in well under a second even on a loaded machine.  */
#define TOUCH_DEADLINE_MS 10000
#define SWEEP_DEADLINE_MS 60000
#define CATCH_UP_MS 60000
#define RSS_SAMPLE_MS 20
#define SUB_RCVHWM 16

#define GAP_EVENTS 50
#define GAP_LATER_EVENTS 10
#define GAP_SINCE 5
#define EIGHT_DAYS_MS (8LL * 86400 * 1000)

typedef struct {
    harness_t *harness;
    proc_t *registry;
    proc_t *tail;
    zsock_t *raw;
    lapse_t *operator;
    lapse_t *node;
    lapse_sub_t *sub;
    lapse_sub_t *node_sub;
} world_t;

/*  Touch latencies and the registry's memory during the sweep.  */
typedef struct {
    int64_t *latencies_us;
    size_t count;
    size_t capacity;
    size_t failures;
    long rss_baseline_kb;
    long rss_peak_kb;
    int64_t sweep_ms;
} sample_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("slow_subscriber");
    if (!world->harness)
        return -1;
    world->operator = harness_client (world->harness, NULL);
    world->node = harness_client (world->harness, "live");
    return world->operator && world->node ? 0 : -1;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    if (world->tail)
        proc_signal (world->tail, SIGCONT);
    lapse_sub_destroy (&world->sub);
    lapse_sub_destroy (&world->node_sub);
    zsock_destroy (&world->raw);
    lapse_destroy (&world->operator);
    lapse_destroy (&world->node);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

/*  Runs SQL on the store file.  The registry must be stopped.  */
static void
s_store_exec (world_t *world, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (world->harness->store, &db), SQLITE_OK);
    char *error = NULL;
    int rc = sqlite3_exec (db, sql, NULL, NULL, &error);
    if (rc != SQLITE_OK)
        print_error ("%s: %s\n", sql, error ? error : "");
    sqlite3_free (error);
    sqlite3_close (db);
    assert_int_equal (rc, SQLITE_OK);
}

static void
s_start_registry (world_t *world)
{
    //  Every bulk client is stale at once, which the eviction brake
    //  exists to stop, so it is off
    world->registry = harness_start_registry (
        world->harness, "registry", NULL, "--stale-after", "1s",
        "--brake=off", NULL);
    assert_non_null (world->registry);
}

/*  Creates the store with the registry, then adds BULK_CLIENTS clients
    whose activity is an hour old in one transaction, which is far faster
    than registering them one request at a time.  */
static void
s_seed_bulk_clients (world_t *world)
{
    s_start_registry (world);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);

    char sql[512];
    long long old_ms = (long long) zclock_time () - 3600 * 1000;
    snprintf (sql, sizeof (sql),
              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
              "FROM n WHERE i < %d) "
              "INSERT INTO clients (id, node, registered_ms, "
              "last_activity_ms) SELECT 'bulk-' || i, 'bulk', %lld, %lld "
              "FROM n",
              BULK_CLIENTS, old_ms, old_ms);
    s_store_exec (world, sql);
}

static long
s_rss_kb (proc_t *proc)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/status", (int) proc->pid);
    char *text = harness_read_file (path, NULL);
    assert_non_null (text);
    char *line = strstr (text, "VmRSS:");
    long kb = line ? strtol (line + strlen ("VmRSS:"), NULL, 10) : -1;
    free (text);
    assert_true (kb > 0);
    return kb;
}

/*  Counts the complete lines of a file.  */
static int
s_count_lines (const char *path)
{
    char *text = harness_read_file (path, NULL);
    if (!text)
        return 0;
    int lines = 0;
    for (char *at = text; *at; at++)
        lines += *at == '\n';
    free (text);
    return lines;
}

static void
s_register_and_deregister (world_t *world, const char *id)
{
    assert_int_equal (lapse_register (world->node, id, NULL, 0, NULL), 0);
    assert_int_equal (lapse_deregister (world->node, id), 0);
}

/*  Starts lapsectl tail, then the raw SUB socket, and makes probe events
    until the raw socket has one: from then on both are subscribed.  The
    tail is stopped with SIGSTOP once it printed every probe, and the raw
    socket is not read again until the end.  */
static void
s_start_subscribers (world_t *world)
{
    harness_t *harness = world->harness;
    world->tail = harness_spawnl (harness, "tail", LAPSECTL_BIN, NULL,
                                  "--commands", harness->commands,
                                  "--events", harness->events, "--json",
                                  "--log-level", "info", "tail", NULL);
    assert_non_null (world->tail);
    assert_eventually (proc_log_contains (world->tail, "msg=\"tail started\""),
                       10000);

    world->raw = zsock_new (ZMQ_SUB);
    assert_non_null (world->raw);
    zsock_set_rcvhwm (world->raw, SUB_RCVHWM);
    zsock_set_subscribe (world->raw, MSG_TOPIC_EVICTED);
    assert_int_equal (zsock_connect (world->raw, "%s", harness->events), 0);

    int probes = 0;
    harness_event_t event;
    int received = 0;
    while (received == 0 && probes < 40) {
        char id[32];
        snprintf (id, sizeof (id), "probe-%d", ++probes);
        s_register_and_deregister (world, id);
        received = harness_event_receive (world->raw, &event, 250);
    }
    assert_int_equal (received, 1);
    assert_eventually (s_count_lines (world->tail->out_path) == probes,
                       10000);
    assert_int_equal (proc_signal (world->tail, SIGSTOP), 0);
}

static void
s_sample_add (sample_t *sample, int64_t latency_us)
{
    if (sample->count == sample->capacity) {
        sample->capacity = sample->capacity ? sample->capacity * 2 : 4096;
        int64_t *bigger = realloc (sample->latencies_us,
                                   sample->capacity * sizeof (int64_t));
        assert_non_null (bigger);
        sample->latencies_us = bigger;
    }
    sample->latencies_us[sample->count++] = latency_us;
}

/*  Sends one touch of every live client and records how long the reply
    took.  */
static void
s_touch_live (world_t *world, sample_t *sample, msg_str_t *ids)
{
    msg_t request = { .type = MSG_TOUCH };
    request.u.touch.ids = ids;
    request.u.touch.count = LIVE_CLIENTS;
    msg_t reply = { 0 };
    int64_t started = zclock_usecs ();
    int rc = lapse_request (world->node, &request, &reply);
    int64_t latency_us = zclock_usecs () - started;
    if (rc == 0 && reply.u.result.unknown_count == 0)
        s_sample_add (sample, latency_us);
    else {
        sample->failures++;
        print_error ("touch failed after %lld us: %s\n",
                     (long long) latency_us, lapse_error (world->node));
    }
    msg_release (&reply);
}

/*  Touches the live clients without pause and samples the registry's
    RSS until the sweep has evicted every bulk client.  */
static void
s_measure_sweep (world_t *world, sample_t *sample)
{
    static char texts[LIVE_CLIENTS][32];
    static msg_str_t ids[LIVE_CLIENTS];
    for (int index = 0; index < LIVE_CLIENTS; index++) {
        snprintf (texts[index], sizeof (texts[index]), "live-%d", index);
        assert_int_equal (lapse_register (world->node, texts[index], NULL,
                                          0, NULL),
                          0);
        ids[index] = msg_str (texts[index]);
    }
    lapse_set_timeout (world->node, TOUCH_DEADLINE_MS);
    sample->rss_baseline_kb = sample->rss_peak_kb
        = s_rss_kb (world->registry);

    msg_t request = { .type = MSG_SWEEP };
    msg_t reply = { 0 };
    int64_t started = harness_now_ms ();
    assert_int_equal (lapse_request (world->operator, &request, &reply), 0);
    msg_release (&reply);

    int64_t next_check = 0;
    bool done = false;
    while (!done && harness_now_ms () < started + SWEEP_DEADLINE_MS) {
        s_touch_live (world, sample, ids);
        long rss = s_rss_kb (world->registry);
        sample->rss_peak_kb = rss > sample->rss_peak_kb ? rss
                                                        : sample->rss_peak_kb;
        if (harness_now_ms () >= next_check) {
            done = harness_stat (world->operator, "evicted") == BULK_CLIENTS
                   && harness_stat (world->operator, "sweep_running") == 0;
            next_check = harness_now_ms () + RSS_SAMPLE_MS;
        }
    }
    sample->sweep_ms = harness_now_ms () - started;
    assert_true (done);
}

static int
s_compare_int64 (const void *a, const void *b)
{
    int64_t left = *(const int64_t *) a, right = *(const int64_t *) b;
    return (left > right) - (left < right);
}

static void
s_report (const sample_t *sample)
{
    qsort (sample->latencies_us, sample->count, sizeof (int64_t),
           s_compare_int64);
    size_t count = sample->count;
    printf ("slow_subscriber: sweep of %d clients took %lld ms; "
            "%zu touches of %d ids: p50=%.2f ms p99=%.2f ms max=%.2f ms\n",
            BULK_CLIENTS, (long long) sample->sweep_ms, count, LIVE_CLIENTS,
            sample->latencies_us[count / 2] / 1000.0,
            sample->latencies_us[count * 99 / 100] / 1000.0,
            sample->latencies_us[count - 1] / 1000.0);
    printf ("slow_subscriber: registry VmRSS %ld kB before the sweep, "
            "%ld kB at most during it\n",
            sample->rss_baseline_kb, sample->rss_peak_kb);
}

/*  Reads what the raw SUB socket kept: each seq at most once and in
    increasing order; the high-water marks dropped the rest.  */
static void
s_drain_raw (world_t *world, uint64_t last_seq)
{
    harness_event_t event;
    uint64_t previous = 0;
    size_t received = 0;
    int rc;
    while ((rc = harness_event_receive (world->raw, &event, 500)) == 1) {
        assert_true (event.seq > previous);
        assert_true (event.seq <= last_seq);
        previous = event.seq;
        received++;
    }
    assert_int_equal (rc, 0);
    printf ("slow_subscriber: raw SUB kept %zu of %llu events\n", received,
            (unsigned long long) last_seq);

    //  The registry queued a full QUEUE_EVENTS_MAX for it, and no more
    assert_true (received >= QUEUE_EVENTS_MAX * 9 / 10);
    assert_true (received < last_seq);
}

/*  Checks that the tail printed events 1 to last_seq, once each and in
    order.  */
static void
s_check_tail (world_t *world, uint64_t last_seq)
{
    assert_eventually (s_count_lines (world->tail->out_path)
                           >= (int) last_seq,
                       CATCH_UP_MS);
    char *text = harness_read_file (world->tail->out_path, NULL);
    assert_non_null (text);
    uint64_t expected = 1;
    for (char *line = strtok (text, "\n"); line; line = strtok (NULL, "\n")) {
        unsigned long long seq = 0;
        assert_int_equal (sscanf (line, "{\"seq\":%llu,", &seq), 1);
        if (seq != expected)
            print_error ("tail line %llu: seq %llu\n",
                         (unsigned long long) expected, seq);
        assert_int_equal (seq, expected);
        expected++;
    }
    free (text);
    assert_int_equal (expected, last_seq + 1);
}

static void
slow_subscribers_do_not_stall_registry (void **state)
{
    world_t *world = *state;
    s_seed_bulk_clients (world);
    s_start_registry (world);
    assert_int_equal (harness_stat (world->operator, "clients"),
                      BULK_CLIENTS);
    assert_int_equal (harness_wait_past_grace (world->operator, 10000), 0);
    s_start_subscribers (world);

    sample_t sample = { 0 };
    s_measure_sweep (world, &sample);
    s_report (&sample);
    assert_int_equal (sample.failures, 0);
    long bound_kb = sample.rss_baseline_kb + RSS_SLACK_KB
                    + (long) BULK_CLIENTS * RSS_LIST_PER_CLIENT / 1024
                    + (long) QUEUE_EVENTS_MAX * RSS_PER_EVENT / 1024;

    /*  AddressSanitizer's redzones and its quarantine of freed memory
        (256 MB by default) multiply the registry's RSS, so the bound
        holds only in a build without it.  */
#ifndef __SANITIZE_ADDRESS__
    assert_true (sample.rss_peak_kb <= bound_kb);
#else
    (void) bound_kb;
#endif
    free (sample.latencies_us);

    //  None of the live clients was evicted alongside the bulk
    assert_int_equal (harness_stat (world->operator, "clients"),
                      LIVE_CLIENTS);
    uint64_t last_seq = harness_stat (world->operator, "last_seq");
    assert_true (last_seq > BULK_CLIENTS);

    assert_int_equal (proc_signal (world->tail, SIGCONT), 0);
    s_check_tail (world, last_seq);
    s_drain_raw (world, last_seq);
    assert_int_equal (proc_stop (world->tail, HARNESS_STOP_MS), 0);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
}

/*  Makes count events, one register and deregister each.  */
static void
s_make_events (world_t *world, const char *prefix, int count)
{
    for (int index = 0; index < count; index++) {
        char id[32];
        snprintf (id, sizeof (id), "%s-%d", prefix, index);
        s_register_and_deregister (world, id);
    }
}

/*  Expects the gap first..last and then the events first_seq..last_seq,
    each once, then nothing more.  */
static void
s_expect_gap_then_events (lapse_sub_t *sub, uint64_t gap_first,
                          uint64_t gap_last, uint64_t first_seq,
                          uint64_t last_seq)
{
    msg_event_t event;
    assert_int_equal (lapse_sub_next (sub, &event, 5000), 2);
    uint64_t first = 0, last = 0;
    assert_true (lapse_sub_gap (sub, &first, &last));
    assert_int_equal (first, gap_first);
    assert_int_equal (last, gap_last);

    for (uint64_t seq = first_seq; seq <= last_seq; seq++) {
        assert_int_equal (lapse_sub_next (sub, &event, 5000), 1);
        assert_int_equal (event.seq, seq);
    }
    assert_int_equal (lapse_sub_next (sub, &event, 1000), 0);
}

static void
replay_past_retention_reports_gap (void **state)
{
    world_t *world = *state;
    s_start_registry (world);
    s_make_events (world, "old", GAP_EVENTS);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);

    //  Older than the default retention of seven days
    char sql[128];
    snprintf (sql, sizeof (sql),
              "UPDATE events SET removed_ms = removed_ms - %lld",
              EIGHT_DAYS_MS);
    s_store_exec (world, sql);

    //  The registry prunes every old event but the newest, which it
    //  keeps so that seq never restarts until a newer event exists
    s_start_registry (world);
    assert_eventually (harness_stat (world->operator, "first_seq")
                           == GAP_EVENTS,
                       10000);
    s_make_events (world, "new", GAP_LATER_EVENTS);
    uint64_t last_seq = GAP_EVENTS + GAP_LATER_EVENTS;
    assert_int_equal (harness_stat (world->operator, "last_seq"), last_seq);
    assert_eventually (harness_stat (world->operator, "first_seq")
                           == GAP_EVENTS + 1,
                       10000);

    //  Both a subscriber to every node and one to the node alone were
    //  at seq GAP_SINCE and missed the pruned events after it
    harness_t *harness = world->harness;
    world->sub = lapse_sub_new (harness->commands, harness->events, NULL,
                                GAP_SINCE);
    world->node_sub = lapse_sub_new (harness->commands, harness->events,
                                     "live", GAP_SINCE);
    assert_non_null (world->sub);
    assert_non_null (world->node_sub);
    s_expect_gap_then_events (world->sub, GAP_SINCE + 1, GAP_EVENTS,
                              GAP_EVENTS + 1, last_seq);
    s_expect_gap_then_events (world->node_sub, GAP_SINCE + 1, GAP_EVENTS,
                              GAP_EVENTS + 1, last_seq);
    assert_int_equal (proc_stop (world->registry, HARNESS_STOP_MS), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (
            slow_subscribers_do_not_stall_registry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (replay_past_retention_reports_gap,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}

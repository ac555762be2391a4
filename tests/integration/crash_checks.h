/*  crash_checks.h: what the crash-loop tests share: the seeded timing of
    the faults, the invariants checked on the store file after each
    fault, the comparison of the audit file with the registry's events,
    and the records of lapse-recording-node.

    The checks fail the running cmocka test with a message that names
    the value that broke the invariant.
*/
#ifndef LAPSE_CRASH_CHECKS_H
#define LAPSE_CRASH_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/*  Iterations when LAPSE_CRASH_ITERATIONS is not set.  */
#define CRASH_ITERATIONS_DEFAULT 10

/*  Returns LAPSE_CRASH_ITERATIONS, or CRASH_ITERATIONS_DEFAULT when it is
    not set.  Fails the test when it is not a number from 1 to max.  */
int
crash_iterations (int max);

/*  Seeds the fault timing from LAPSE_CRASH_SEED, or from the clock and
    pid when it is not set, and prints the seed so that a failed run can
    be repeated with it.  */
void
crash_seed (const char *test_name);

/*  Returns a number from low to high inclusive from the seeded
    generator.  */
int
crash_random (int low, int high);

/*  What crash_check_store found.  */
typedef struct {
    uint64_t events;
    uint64_t last_seq;
    uint64_t clients;
} store_summary_t;

/*  Opens the store file read-only, without taking the registry's lock,
    so the registry may be running or dead.  Checks that PRAGMA
    integrity_check returns "ok" and that the events are numbered 1 to
    the store's own last_seq counter with no gap.  Checks too that no
    client id has two events, that no registered client has an event, and
    that each event's prev is the seq of its node's previous event.
    These last three hold because every removal in these tests has a
    fresh id and no event is pruned.  Fails the test otherwise.  */
void
crash_check_store (const char *path, store_summary_t *summary);

/*  Checks that the audit file contains exactly the registry's events, one
    line each, in seq order, as lapse_event_to_json prints them, and
    nothing else.  The registry must be running.  */
void
crash_check_audit_file (lapse_t *client, const char *audit_file);

/*  Checks that every complete line of the audit file is an event whose
    seq is its line number, which is what a file holding each event once,
    in order, from seq 1 looks like.  A last line without its newline (a
    write cut short by SIGKILL) is not counted.  Returns the number of
    complete lines.  */
int
crash_check_audit_prefix (const char *audit_file);

/*  Returns how many of the harness's processes whose name starts with
    prefix have a stderr line containing needle.  */
int
crash_logs_count (harness_t *harness, const char *prefix,
                  const char *needle);

/*  Counts the complete lines of a file.  */
int
crash_count_lines (const char *path);

/*  One client as lapse-recording-node reported it.  */
typedef struct {
    char id[MSG_ID_MAX + 1];
    int64_t registered_ms;      /* send time of the acknowledged
                                   registration */
    int64_t acked_ms;           /* newest acknowledged activity */
    bool deregistered;          /* deregistration acknowledged */
} node_client_t;

typedef struct {
    node_client_t *clients;
    size_t count;
    uint64_t errors;            /* "error" records */
    bool finished;              /* a "summary" record was seen */
} node_records_t;

/*  Reads the records a stopped lapse-recording-node wrote to path.
    Returns 0, or -1 when the file cannot be read.  */
int
node_records_load (const char *path, node_records_t *records);

void
node_records_free (node_records_t *records);

/*  Checks acknowledged registrations against the store file.  Each
    client must still be registered or have exactly one event, and a
    deregistered one a "deregistered" event.  A client evicted as stale
    must have been removed at least stale_after_ms after its newest
    acknowledged activity.  Returns how many of the clients were
    removed.  */
size_t
crash_check_acknowledged (const char *store_path,
                          const node_records_t *records,
                          int64_t stale_after_ms);

#endif

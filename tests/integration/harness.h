/*  harness.h: what every integration test needs to run the real Lapse
    programs and watch them.

    A harness_t is one test's world: a fresh temporary folder holding the
    ipc:// endpoints, the store and every spawned program's stdout and
    stderr, plus the list of processes the test started.  The test
    executable calls harness_finish with cmocka's result at the end: it
    removes the folders when every test passed and keeps them, printing
    their paths, when one failed.  Every process still running is
    stopped by harness_destroy (call it from the cmocka teardown), at
    exit, and on SIGINT or SIGTERM, so a failed assert leaves nothing
    behind.

    Binary paths come from the build as the compile definitions
    LAPSE_REGISTRY_BIN, LAPSE_SCHEDULER_BIN, LAPSE_AUDIT_BIN,
    LAPSECTL_BIN and LAPSE_NODE_SIM_BIN.
*/
#ifndef LAPSE_HARNESS_H
#define LAPSE_HARNESS_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include <czmq.h>

#include "lapse.h"
#include "protocol.h"

/*  Interval between two checks of a condition.  */
#define HARNESS_POLL_MS 25

/*  How long a stopped process gets between SIGTERM and SIGKILL.  */
#define HARNESS_STOP_MS 5000

/*  Processes one harness can start, restarts included: the crash-loop
    tests start a new process for every kill.  */
#define HARNESS_PROCS_MAX 256
#define HARNESS_DIR_MAX 128
#define HARNESS_ENDPOINT_MAX 160
#define HARNESS_FILE_MAX 256

/*  One spawned program.  Owned by its harness.  */
typedef struct {
    char name[64];              /* unique in the harness: "registry-2" */
    pid_t pid;                  /* 0 once reaped */
    int status;                 /* waitpid status, valid once reaped */
    char out_path[HARNESS_FILE_MAX];
    char err_path[HARNESS_FILE_MAX];
} proc_t;

typedef struct {
    char name[64];
    char dir[HARNESS_DIR_MAX];
    char commands[HARNESS_ENDPOINT_MAX];
    char events[HARNESS_ENDPOINT_MAX];
    char ticks[HARNESS_ENDPOINT_MAX];
    char store[HARNESS_FILE_MAX];
    proc_t procs[HARNESS_PROCS_MAX];
    size_t proc_count;
    zsock_t *ticker;            /* PUB to ticks, made by harness_tick */
    uint64_t tick_seq;
} harness_t;

/*  Creates a temporary folder named after the test and fills in the
    ipc:// endpoints and the store path inside it.  Returns NULL when the
    folder cannot be made.  */
harness_t *
harness_new (const char *test_name);

/*  Stops every process still running, closes the tick socket and frees
    the harness.  The folder stays until harness_finish.  Accepts NULL and
    sets *self_p to NULL.  A program that exits non-zero when stopped
    here, or whose stderr contains a sanitizer report (LeakSanitizer writes
    one at exit), is named on stderr and makes harness_finish fail.  */
void
harness_destroy (harness_t **self_p);

/*  Ends the executable: removes every temporary folder when failed is 0
    and LAPSE_IT_KEEP is not set, otherwise prints each folder's path and
    keeps it.  Returns failed, or 1 when a program did not stop cleanly
    (see harness_destroy), to be the exit status of main.  */
int
harness_finish (int failed);

/*  Builds a path inside the test's folder into buffer.  Returns buffer.  */
char *
harness_path (harness_t *self, const char *file, char *buffer, size_t size);

/*  Fills endpoint with a tcp://127.0.0.1:PORT endpoint whose port was
    free a moment ago (the kernel picks it).  Returns 0, or -1.  */
int
harness_tcp_endpoint (char *endpoint, size_t size);

/*  Writes text to a file in the test's folder, replacing it atomically
    (rename), so a program never reads half a file.  Returns 0, or -1.  */
int
harness_write_file (harness_t *self, const char *file, const char *text);

/*  Starts binary with the given arguments (argv[0] is added).  Its
    environment is the test's without any LAPSE_* variable, plus the
    "NAME=VALUE" entries of env (which may be NULL).  stdout and stderr
    go to NAME.out and NAME.err in the folder, and a name used before
    gets a suffix.  Returns the process, or NULL when the spawn failed.  */
proc_t *
harness_spawn (harness_t *self, const char *name, const char *binary,
               const char *const *args, const char *const *env);

/*  Like harness_spawn with the arguments as a NULL-terminated list.  */
proc_t *
harness_spawnl (harness_t *self, const char *name, const char *binary,
                const char *const *env, ...)
    __attribute__ ((sentinel));

/*  Starts lapse-registry on the harness endpoints and store with the
    given extra arguments (NULL-terminated), and waits until it replies
    to a stats request.  Returns NULL when it exited or did not reply
    within 10 s.  */
proc_t *
harness_start_registry (harness_t *self, const char *name,
                        const char *const *env, ...)
    __attribute__ ((sentinel));

/*  Runs lapsectl against the harness endpoints with the given arguments
    (NULL-terminated) and waits up to 10 s for it to exit.  Sets *proc_p
    (when not NULL) to the finished process, whose out_path contains its
    stdout.  Returns its exit code, or -1 when it did not exit in time
    (it is then killed).  */
int
harness_lapsectl (harness_t *self, proc_t **proc_p, ...)
    __attribute__ ((sentinel));

/*  Counts the lines of a file that contain needle.  */
int
harness_file_count (const char *path, const char *needle);

/*  Sends sig to the process.  Returns 0, or -1 when it is not running.  */
int
proc_signal (proc_t *proc, int sig);

/*  Returns true while the process has not exited (reaping it if it
    has).  */
bool
proc_running (proc_t *proc);

/*  Waits up to deadline_ms for the process to exit.  Returns its exit
    code, 128 + the signal when a signal ended it, or -1 when it is still
    running at the deadline.  */
int
proc_wait (proc_t *proc, int deadline_ms);

/*  Sends SIGTERM, waits up to deadline_ms, then sends SIGKILL.  Returns
    what proc_wait returns; a process that needed SIGKILL returns
    128 + SIGKILL.  */
int
proc_stop (proc_t *proc, int deadline_ms);

/*  Counts the lines of the process's stderr that contain needle.  */
int
proc_log_count (proc_t *proc, const char *needle);

/*  Returns true when a line of the process's stderr contains needle.  */
bool
proc_log_contains (proc_t *proc, const char *needle);

/*  Copies the first stderr line containing needle into line (cut to
    fit).  Returns 0, or -1 when no line contains it.  */
int
proc_log_line (proc_t *proc, const char *needle, char *line, size_t size);

/*  Reads a whole file into a malloc'd, NUL-terminated buffer.  Returns
    NULL when it cannot be read.  */
char *
harness_read_file (const char *path, size_t *size);

/*  Returns the monotonic clock in milliseconds.  */
int64_t
harness_now_ms (void);

/*  Sleeps for the given milliseconds.  */
void
harness_sleep_ms (int milliseconds);

typedef bool (harness_condition_fn) (void *arg);

/*  Polls condition every HARNESS_POLL_MS until it returns true or
    deadline_ms passed.  Returns the condition's last value.  */
bool
harness_wait_for (harness_condition_fn *condition, void *arg,
                  int deadline_ms);

/*  Fails the test unless expr becomes true within deadline_ms, checking
    every HARNESS_POLL_MS.  expr is evaluated repeatedly.  */
#define assert_eventually(expr, deadline_ms)                                \
    do {                                                                    \
        int64_t harness_end_ = harness_now_ms () + (deadline_ms);           \
        bool harness_ok_;                                                   \
        while (!(harness_ok_ = (expr))                                      \
               && harness_now_ms () < harness_end_)                         \
            harness_sleep_ms (HARNESS_POLL_MS);                             \
        _assert_true (harness_ok_, #expr " within " #deadline_ms " ms",     \
                      __FILE__, __LINE__);                                  \
    } while (0)

/*  Connects a liblapse client to the harness's command endpoint with a
    2 s request timeout.  node may be NULL.  */
lapse_t *
harness_client (harness_t *self, const char *node);

/*  Reads one stats counter.  Returns 0 and sets *value, or -1 when the
    request failed or the counter is not in the reply.  */
int
harness_stat_get (lapse_t *client, const char *name, uint64_t *value);

/*  Returns one stats counter, or UINT64_MAX when it cannot be read, so
    that a comparison in assert_eventually simply stays false.  */
uint64_t
harness_stat (lapse_t *client, const char *name);

/*  Encodes and sends one tick [ "tick" ][body] from scheduler id
    "harness" to the registry's tick endpoint, connecting the PUB socket
    on first use.  Returns 0, or -1.  */
int
harness_tick (harness_t *self, int64_t interval_ms);

/*  Makes the registry run one sweep and waits until it finished.  Sends
    a tick every 200 ms until the stats count one more sweep, because a
    fresh PUB loses what it sends before the subscription arrives, then
    waits until no sweep runs.  Ticks carry interval_ms 100, so the
    registry's --tick-min-gap must be below the time since its last
    sweep.  Returns 0, or -1 at the deadline.  */
int
harness_sweep (harness_t *self, lapse_t *client, int deadline_ms);

/*  Waits until the registry has served for longer than its stale-after,
    so that the next sweep is past the start-up grace.  Returns 0, or -1
    at the deadline.  */
int
harness_wait_past_grace (lapse_t *client, int deadline_ms);

/*  Fetches every retained event with seq > since into a malloc'd array
    of copies (strings owned by the array) and returns the count, or -1.
    The caller frees with harness_events_free.  */
typedef struct {
    uint64_t seq;
    uint64_t prev;
    char id[MSG_ID_MAX + 1];
    char node[MSG_NODE_MAX + 1];
    msg_reason_t reason;
    int64_t last_activity_ms;
    int64_t removed_ms;
    uint64_t sweep;
} harness_event_t;

int
harness_events (lapse_t *client, uint64_t since, harness_event_t **events);

void
harness_events_free (harness_event_t **events);

/*  Creates a SUB socket connected to the registry's event endpoint and
    subscribed to every eviction topic.  ZeroMQ delivers only what is
    published after the subscription reached the registry, so create it
    well before the events it must see.  */
zsock_t *
harness_event_socket (harness_t *self);

/*  Waits up to timeout_ms for one published event and copies it into
    *event.  Returns 1 with an event, 0 on timeout, or -1 when a message
    arrived that is not [ "evicted.<node>" ][event body] with the body's
    node in the topic.  */
int
harness_event_receive (zsock_t *socket, harness_event_t *event,
                       int timeout_ms);

/*  Reads one client.  Returns 0 and sets *last_activity_ms (when not
    NULL), 1 when the registry replied unknown_client, or -1 on any
    other failure.  */
int
harness_get (lapse_t *client, const char *id, int64_t *last_activity_ms);

/*  Counts registered clients (all pages of list), optionally of one node
    (NULL for all), and calls fn (when not NULL) with each id.  Returns
    the count, or -1.  */
int
harness_list (lapse_t *client, const char *node,
              void (*fn) (const char *id, void *arg), void *arg);

#endif

/*  harness.c: temporary folders, spawned programs, polling and registry
    requests for the integration tests.  */

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HARNESS_DIRS_MAX 16
#define HARNESS_LIVE_MAX 16
#define HARNESS_ENV_MAX 512
#define HARNESS_ARGS_MAX 64
#define HARNESS_CLIENT_TIMEOUT_MS 2000
#define HARNESS_REGISTRY_START_MS 10000
#define HARNESS_TICK_RESEND_MS 200
#define HARNESS_LAPSECTL_MS 10000

/*  Folders made by this executable, for harness_finish.  */
static char s_dirs[HARNESS_DIRS_MAX][HARNESS_DIR_MAX];
static size_t s_dir_count;

/*  Programs that exited non-zero when harness_destroy stopped them, or
    whose stderr contains a sanitizer report.  harness_finish fails the
    executable when there is one.  */
static size_t s_unclean_count;

/*  Harnesses not yet destroyed, whose processes the exit and signal
    handlers kill.  */
static harness_t *s_live[HARNESS_LIVE_MAX];
static bool s_handlers_installed;

/*  Kills every process still running.  Runs at exit and from the signal
    handler, so it uses kill(2) and nothing else.  */
static void
s_kill_all (void)
{
    for (size_t index = 0; index < HARNESS_LIVE_MAX; index++) {
        harness_t *self = s_live[index];
        if (!self)
            continue;
        for (size_t proc = 0; proc < self->proc_count; proc++)
            if (self->procs[proc].pid > 0)
                kill (self->procs[proc].pid, SIGKILL);
    }
}

/*  Writes text to stderr with write(2), which a signal handler may call.  */
static void
s_write_stderr (const char *text)
{
    ssize_t rc = write (STDERR_FILENO, text, strlen (text));
    (void) rc;
}

/*  Kills the spawned programs, names the folders kept for inspection and
    dies of the same signal.  */
static void
s_on_signal (int sig)
{
    s_kill_all ();
    for (size_t index = 0; index < s_dir_count; index++) {
        s_write_stderr ("harness: interrupted, kept ");
        s_write_stderr (s_dirs[index]);
        s_write_stderr ("\n");
    }
    signal (sig, SIG_DFL);
    raise (sig);
}

static void
s_install_handlers (void)
{
    if (s_handlers_installed)
        return;
    s_handlers_installed = true;
    atexit (s_kill_all);

    //  czmq would otherwise take SIGINT and SIGTERM for itself and only
    //  set zsys_interrupted, leaving the spawned programs running
    zsys_handler_set (NULL);

    struct sigaction action = { .sa_handler = s_on_signal };
    sigemptyset (&action.sa_mask);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGALRM, &action, NULL);
}

static void
s_live_add (harness_t *self)
{
    for (size_t index = 0; index < HARNESS_LIVE_MAX; index++)
        if (!s_live[index]) {
            s_live[index] = self;
            return;
        }
}

static void
s_live_remove (harness_t *self)
{
    for (size_t index = 0; index < HARNESS_LIVE_MAX; index++)
        if (s_live[index] == self)
            s_live[index] = NULL;
}

harness_t *
harness_new (const char *test_name)
{
    s_install_handlers ();
    harness_t *self = calloc (1, sizeof (harness_t));
    if (!self)
        return NULL;

    //  ipc:// paths must fit in sockaddr_un (107 bytes), so the folder
    //  is always under /tmp and TMPDIR is ignored
    snprintf (self->name, sizeof (self->name), "%.40s", test_name);
    snprintf (self->dir, sizeof (self->dir), "/tmp/lapse-%s-XXXXXX",
              self->name);
    if (!mkdtemp (self->dir)) {
        fprintf (stderr, "harness: mkdtemp %s failed: %s\n", self->dir,
                 strerror (errno));
        free (self);
        return NULL;
    }
    if (s_dir_count < HARNESS_DIRS_MAX)
        memcpy (s_dirs[s_dir_count++], self->dir, HARNESS_DIR_MAX);

    snprintf (self->commands, sizeof (self->commands),
              "ipc://%s/commands.ipc", self->dir);
    snprintf (self->events, sizeof (self->events), "ipc://%s/events.ipc",
              self->dir);
    snprintf (self->ticks, sizeof (self->ticks), "ipc://%s/ticks.ipc",
              self->dir);
    snprintf (self->store, sizeof (self->store), "%s/lapse.db", self->dir);
    s_live_add (self);
    return self;
}

/*  Returns true when the program's stderr contains a report of
    AddressSanitizer, LeakSanitizer (written at exit) or
    UndefinedBehaviorSanitizer.  */
static bool
s_has_sanitizer_report (proc_t *proc)
{
    return proc_log_contains (proc, "ERROR: AddressSanitizer")
           || proc_log_contains (proc, "ERROR: LeakSanitizer")
           || proc_log_contains (proc, "runtime error:");
}

/*  Stops a program still running and counts it as unclean when it does
    not exit 0 on SIGTERM, or when it ever wrote a sanitizer report.  A
    program that exited earlier was checked by its test, which may have
    expected another status or killed it on purpose.  */
static void
s_stop_and_check (proc_t *proc)
{
    if (proc->pid > 0) {
        int code = proc_stop (proc, HARNESS_STOP_MS);
        if (code != 0) {
            fprintf (stderr, "harness: %s exited with status %d when"
                     " stopped, expected 0; see %s\n", proc->name, code,
                     proc->err_path);
            s_unclean_count++;
            return;
        }
    }
    if (s_has_sanitizer_report (proc)) {
        fprintf (stderr, "harness: %s wrote a sanitizer report; see %s\n",
                 proc->name, proc->err_path);
        s_unclean_count++;
    }
}

void
harness_destroy (harness_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    harness_t *self = *self_p;

    //  Stop the newest first: clients of the registry before the registry
    for (size_t index = self->proc_count; index > 0; index--)
        s_stop_and_check (&self->procs[index - 1]);

    zsock_destroy (&self->ticker);
    s_live_remove (self);
    free (self);
    *self_p = NULL;
}

static int
s_remove_entry (const char *path, const struct stat *info, int flag,
                struct FTW *ftw)
{
    return remove (path);
}

int
harness_finish (int failed)
{
    if (s_unclean_count > 0) {
        fprintf (stderr, "harness: %zu programs did not stop cleanly\n",
                 s_unclean_count);
        failed = failed ? failed : 1;
    }
    bool keep = failed || getenv ("LAPSE_IT_KEEP");
    for (size_t index = 0; index < s_dir_count; index++) {
        if (keep)
            fprintf (stderr, "harness: kept %s for inspection\n",
                     s_dirs[index]);
        else
            nftw (s_dirs[index], s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return failed;
}

char *
harness_path (harness_t *self, const char *file, char *buffer, size_t size)
{
    snprintf (buffer, size, "%s/%s", self->dir, file);
    return buffer;
}

int
harness_tcp_endpoint (char *endpoint, size_t size)
{
    //  Binding port 0 lets the kernel choose.  The port is released for
    //  the program under test, so another process could take it in
    //  between; ipc:// endpoints have no such race.
    zsock_t *probe = zsock_new (ZMQ_PUB);
    if (!probe)
        return -1;
    int port = zsock_bind (probe, "tcp://127.0.0.1:*");
    zsock_destroy (&probe);
    if (port < 0)
        return -1;
    snprintf (endpoint, size, "tcp://127.0.0.1:%d", port);
    return 0;
}

int
harness_write_file (harness_t *self, const char *file, const char *text)
{
    char path[PATH_MAX];
    char temporary[PATH_MAX + 8];
    harness_path (self, file, path, sizeof (path));
    snprintf (temporary, sizeof (temporary), "%s.tmp", path);

    FILE *handle = fopen (temporary, "w");
    if (!handle)
        return -1;
    size_t length = strlen (text);
    bool written = fwrite (text, 1, length, handle) == length;
    if (fclose (handle) != 0 || !written)
        return -1;
    return rename (temporary, path);
}

/*  Picks a name not used by an earlier process of this harness.  */
static void
s_unique_name (harness_t *self, const char *name, char *unique, size_t size)
{
    snprintf (unique, size, "%s", name);
    for (int suffix = 2; ; suffix++) {
        bool taken = false;
        for (size_t index = 0; index < self->proc_count; index++)
            if (strcmp (self->procs[index].name, unique) == 0)
                taken = true;
        if (!taken)
            return;
        snprintf (unique, size, "%s-%d", name, suffix);
    }
}

/*  Builds the child's environment: ours without LAPSE_* plus extra.  */
static size_t
s_build_env (const char *const *extra, char **envp, size_t max)
{
    size_t count = 0;
    for (char **entry = environ; *entry && count + 1 < max; entry++)
        if (strncmp (*entry, "LAPSE_", 6) != 0)
            envp[count++] = *entry;
    for (size_t index = 0; extra && extra[index] && count + 1 < max; index++)
        envp[count++] = (char *) extra[index];
    envp[count] = NULL;
    return count;
}

proc_t *
harness_spawn (harness_t *self, const char *name, const char *binary,
               const char *const *args, const char *const *env)
{
    if (self->proc_count == HARNESS_PROCS_MAX) {
        fprintf (stderr, "harness: more than %d processes\n",
                 HARNESS_PROCS_MAX);
        return NULL;
    }
    proc_t *proc = &self->procs[self->proc_count];
    memset (proc, 0, sizeof (proc_t));
    char unique[sizeof (proc->name)];
    s_unique_name (self, name, unique, sizeof (unique));
    memcpy (proc->name, unique, sizeof (unique));
    snprintf (proc->out_path, sizeof (proc->out_path), "%s/%s.out",
              self->dir, unique);
    snprintf (proc->err_path, sizeof (proc->err_path), "%s/%s.err",
              self->dir, unique);

    char *argv[HARNESS_ARGS_MAX];
    size_t argc = 0;
    argv[argc++] = (char *) binary;
    for (size_t index = 0; args && args[index]; index++) {
        if (argc + 1 == HARNESS_ARGS_MAX)
            return NULL;
        argv[argc++] = (char *) args[index];
    }
    argv[argc] = NULL;

    char *envp[HARNESS_ENV_MAX];
    s_build_env (env, envp, HARNESS_ENV_MAX);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_addopen (&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen (&actions, 1, proc->out_path,
                                      O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen (&actions, 2, proc->err_path,
                                      O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = posix_spawn (&proc->pid, binary, &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy (&actions);
    if (rc != 0) {
        fprintf (stderr, "harness: spawning %s failed: %s\n", binary,
                 strerror (rc));
        proc->pid = 0;
        return NULL;
    }
    self->proc_count++;
    return proc;
}

/*  Collects a NULL-terminated argument list into args.  */
static void
s_collect_args (va_list list, const char **args, size_t max)
{
    size_t count = 0;
    const char *arg;
    while ((arg = va_arg (list, const char *)) && count + 1 < max)
        args[count++] = arg;
    args[count] = NULL;
}

proc_t *
harness_spawnl (harness_t *self, const char *name, const char *binary,
                const char *const *env, ...)
{
    const char *args[HARNESS_ARGS_MAX];
    va_list list;
    va_start (list, env);
    s_collect_args (list, args, HARNESS_ARGS_MAX);
    va_end (list);
    return harness_spawn (self, name, binary, args, env);
}

proc_t *
harness_start_registry (harness_t *self, const char *name,
                        const char *const *env, ...)
{
    const char *args[HARNESS_ARGS_MAX] = {
        "--commands", self->commands, "--events", self->events,
        "--ticks", self->ticks, "--store", self->store
    };
    size_t fixed = 8;
    va_list list;
    va_start (list, env);
    s_collect_args (list, args + fixed, HARNESS_ARGS_MAX - fixed);
    va_end (list);

    proc_t *proc = harness_spawn (self, name, LAPSE_REGISTRY_BIN, args, env);
    if (!proc)
        return NULL;

    lapse_t *client = harness_client (self, NULL);
    uint64_t uptime = 0;
    int64_t end = harness_now_ms () + HARNESS_REGISTRY_START_MS;
    bool up = false;
    while (!up && harness_now_ms () < end && proc_running (proc)) {
        up = harness_stat_get (client, "uptime_ms", &uptime) == 0;
        if (!up)
            harness_sleep_ms (HARNESS_POLL_MS);
    }
    lapse_destroy (&client);
    if (!up) {
        fprintf (stderr, "harness: %s did not start; see %s\n", proc->name,
                 proc->err_path);
        return NULL;
    }
    return proc;
}

int
harness_lapsectl (harness_t *self, proc_t **proc_p, ...)
{
#ifdef LAPSECTL_BIN
    const char *args[HARNESS_ARGS_MAX] = {
        "--commands", self->commands, "--events", self->events
    };
    size_t fixed = 4;
    va_list list;
    va_start (list, proc_p);
    s_collect_args (list, args + fixed, HARNESS_ARGS_MAX - fixed);
    va_end (list);

    proc_t *proc = harness_spawn (self, "lapsectl", LAPSECTL_BIN, args, NULL);
    if (proc_p)
        *proc_p = proc;
    if (!proc)
        return -1;
    int code = proc_wait (proc, HARNESS_LAPSECTL_MS);
    if (code < 0)
        proc_stop (proc, 0);
    return code;
#else
    fprintf (stderr, "harness: lapsectl was not built\n");
    return -1;
#endif
}

int
proc_signal (proc_t *proc, int sig)
{
    if (!proc || proc->pid <= 0)
        return -1;
    return kill (proc->pid, sig);
}

/*  Reaps the process when it has exited.  Returns true when it has.  */
static bool
s_reap (proc_t *proc)
{
    if (proc->pid <= 0)
        return true;
    int status = 0;
    pid_t rc = waitpid (proc->pid, &status, WNOHANG);
    if (rc == proc->pid || (rc < 0 && errno == ECHILD)) {
        proc->status = status;
        proc->pid = 0;
        return true;
    }
    return false;
}

bool
proc_running (proc_t *proc)
{
    return proc && !s_reap (proc);
}

static int
s_exit_code (int status)
{
    if (WIFEXITED (status))
        return WEXITSTATUS (status);
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return -1;
}

int
proc_wait (proc_t *proc, int deadline_ms)
{
    int64_t end = harness_now_ms () + deadline_ms;
    while (!s_reap (proc)) {
        if (harness_now_ms () >= end)
            return -1;
        harness_sleep_ms (10);
    }
    return s_exit_code (proc->status);
}

int
proc_stop (proc_t *proc, int deadline_ms)
{
    if (!proc)
        return -1;
    if (proc->pid > 0)
        kill (proc->pid, SIGTERM);
    int code = proc_wait (proc, deadline_ms);
    if (code >= 0)
        return code;

    fprintf (stderr, "harness: %s ignored SIGTERM for %d ms; killing it\n",
             proc->name, deadline_ms);
    kill (proc->pid, SIGKILL);
    return proc_wait (proc, HARNESS_STOP_MS);
}

char *
harness_read_file (const char *path, size_t *size)
{
    FILE *handle = fopen (path, "rb");
    if (!handle)
        return NULL;
    size_t capacity = 4096, length = 0;
    char *buffer = malloc (capacity);
    size_t got;
    while (buffer
           && (got = fread (buffer + length, 1, capacity - length - 1,
                            handle)) > 0) {
        length += got;
        if (capacity - length - 1 == 0) {
            char *bigger = realloc (buffer, capacity * 2);
            if (!bigger) {
                free (buffer);
                buffer = NULL;
                break;
            }
            buffer = bigger;
            capacity *= 2;
        }
    }
    fclose (handle);
    if (!buffer)
        return NULL;
    buffer[length] = '\0';
    if (size)
        *size = length;
    return buffer;
}

/*  Calls fn on each line of path containing needle until fn returns
    false.  Returns the number of such lines seen.  */
static int
s_each_line (const char *path, const char *needle,
             bool (*fn) (const char *line, size_t length, void *arg),
             void *arg)
{
    char *text = harness_read_file (path, NULL);
    if (!text)
        return 0;

    int count = 0;
    char *line = text;
    while (*line) {
        char *end = strchr (line, '\n');
        if (end)
            *end = '\0';
        if (strstr (line, needle)) {
            count++;
            if (fn && !fn (line, strlen (line), arg))
                break;
        }
        if (!end)
            break;
        line = end + 1;
    }
    free (text);
    return count;
}

int
harness_file_count (const char *path, const char *needle)
{
    return s_each_line (path, needle, NULL, NULL);
}

int
proc_log_count (proc_t *proc, const char *needle)
{
    return s_each_line (proc->err_path, needle, NULL, NULL);
}

bool
proc_log_contains (proc_t *proc, const char *needle)
{
    return proc_log_count (proc, needle) > 0;
}

typedef struct {
    char *line;
    size_t size;
} line_copy_t;

static bool
s_copy_line (const char *line, size_t length, void *arg)
{
    line_copy_t *copy = arg;
    snprintf (copy->line, copy->size, "%s", line);
    return false;
}

int
proc_log_line (proc_t *proc, const char *needle, char *line, size_t size)
{
    line_copy_t copy = { line, size };
    return s_each_line (proc->err_path, needle, s_copy_line, &copy) > 0
               ? 0
               : -1;
}

int64_t
harness_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void
harness_sleep_ms (int milliseconds)
{
    struct timespec delay = { milliseconds / 1000,
                              (long) (milliseconds % 1000) * 1000000 };
    while (nanosleep (&delay, &delay) != 0 && errno == EINTR)
        ;
}

bool
harness_wait_for (harness_condition_fn *condition, void *arg,
                  int deadline_ms)
{
    int64_t end = harness_now_ms () + deadline_ms;
    bool met;
    while (!(met = condition (arg)) && harness_now_ms () < end)
        harness_sleep_ms (HARNESS_POLL_MS);
    return met;
}

lapse_t *
harness_client (harness_t *self, const char *node)
{
    lapse_t *client = lapse_new (self->commands, node);
    if (client)
        lapse_set_timeout (client, HARNESS_CLIENT_TIMEOUT_MS);
    return client;
}

int
harness_stat_get (lapse_t *client, const char *name, uint64_t *value)
{
    msg_t request = { .type = MSG_STATS };
    msg_t reply = { 0 };
    if (lapse_request (client, &request, &reply) != 0) {
        msg_release (&reply);
        return -1;
    }

    int rc = -1;
    msg_result_t *result = &reply.u.result;
    for (uint32_t index = 0; index < result->stats_count; index++)
        if (msg_str_eq (result->stats[index].name, name)) {
            *value = result->stats[index].value;
            rc = 0;
        }
    msg_release (&reply);
    return rc;
}

uint64_t
harness_stat (lapse_t *client, const char *name)
{
    uint64_t value;
    return harness_stat_get (client, name, &value) == 0 ? value : UINT64_MAX;
}

int
harness_tick (harness_t *self, int64_t interval_ms)
{
    if (!self->ticker) {
        self->ticker = zsock_new (ZMQ_PUB);
        if (!self->ticker)
            return -1;
        if (zsock_connect (self->ticker, "%s", self->ticks) != 0) {
            zsock_destroy (&self->ticker);
            return -1;
        }
    }

    msg_t tick = { .type = MSG_TICK };
    tick.u.tick.scheduler = msg_str ("harness");
    tick.u.tick.seq = ++self->tick_seq;
    tick.u.tick.sent_ms = zclock_time ();
    tick.u.tick.interval_ms = interval_ms;
    void *body = NULL;
    size_t size = 0;
    msg_failure_t failure;
    if (msg_encode (&tick, &body, &size, &failure) != 0) {
        fprintf (stderr, "harness: tick encoding failed: %s\n",
                 failure.message);
        return -1;
    }
    int rc = zsock_send (self->ticker, "sb", MSG_TOPIC_TICK, body, size);
    free (body);
    return rc;
}

int
harness_sweep (harness_t *self, lapse_t *client, int deadline_ms)
{
    int64_t end = harness_now_ms () + deadline_ms;
    uint64_t before;
    if (harness_stat_get (client, "sweeps", &before) != 0)
        return -1;

    bool started = false;
    while (!started && harness_now_ms () < end) {
        if (harness_tick (self, 100) != 0)
            return -1;
        int64_t resend = harness_now_ms () + HARNESS_TICK_RESEND_MS;
        while (!started && harness_now_ms () < resend) {
            harness_sleep_ms (HARNESS_POLL_MS);
            uint64_t sweeps;
            started = harness_stat_get (client, "sweeps", &sweeps) == 0
                      && sweeps > before;
        }
    }

    while (started && harness_now_ms () < end) {
        uint64_t running;
        if (harness_stat_get (client, "sweep_running", &running) == 0
            && running == 0)
            return 0;
        harness_sleep_ms (HARNESS_POLL_MS);
    }
    return -1;
}

int
harness_wait_past_grace (lapse_t *client, int deadline_ms)
{
    int64_t end = harness_now_ms () + deadline_ms;
    while (harness_now_ms () < end) {
        uint64_t uptime, stale_after;
        if (harness_stat_get (client, "uptime_ms", &uptime) == 0
            && harness_stat_get (client, "stale_after_ms", &stale_after) == 0
            && uptime > stale_after)
            return 0;
        harness_sleep_ms (HARNESS_POLL_MS);
    }
    return -1;
}

static void
s_event_copy (const msg_event_t *from, harness_event_t *to)
{
    to->seq = from->seq;
    to->prev = from->prev;
    msg_str_copy (from->id, to->id, sizeof (to->id));
    msg_str_copy (from->node, to->node, sizeof (to->node));
    to->reason = from->reason;
    to->last_activity_ms = from->last_activity_ms;
    to->removed_ms = from->removed_ms;
    to->sweep = from->sweep;
}

int
harness_events (lapse_t *client, uint64_t since, harness_event_t **events)
{
    size_t count = 0, capacity = 0;
    harness_event_t *array = NULL;

    for (;;) {
        msg_t request = { .type = MSG_EVENTS };
        request.u.events.since = since;
        request.u.events.limit = MSG_PAGE_MAX;
        msg_t reply = { 0 };
        if (lapse_request (client, &request, &reply) != 0) {
            msg_release (&reply);
            free (array);
            return -1;
        }

        msg_result_t *result = &reply.u.result;
        if (count + result->events_count > capacity) {
            capacity = (count + result->events_count) * 2;
            harness_event_t *bigger =
                realloc (array, capacity * sizeof (harness_event_t));
            if (!bigger) {
                msg_release (&reply);
                free (array);
                return -1;
            }
            array = bigger;
        }
        for (uint32_t index = 0; index < result->events_count; index++)
            s_event_copy (&result->events[index], &array[count++]);

        uint32_t got = result->events_count;
        if (got > 0)
            since = result->events[got - 1].seq;
        msg_release (&reply);
        if (got < MSG_PAGE_MAX)
            break;
    }
    *events = array;
    return (int) count;
}

void
harness_events_free (harness_event_t **events)
{
    if (events) {
        free (*events);
        *events = NULL;
    }
}

int
harness_get (lapse_t *client, const char *id, int64_t *last_activity_ms)
{
    msg_t request = { .type = MSG_GET };
    request.u.client_ref.id = msg_str (id);
    msg_t reply = { 0 };
    int rc = lapse_request (client, &request, &reply);
    if (rc == 0 && last_activity_ms)
        *last_activity_ms = reply.u.result.client.last_activity_ms;
    msg_release (&reply);
    if (rc == 0)
        return 0;
    return lapse_error_code (client) == MSG_ERR_UNKNOWN_CLIENT ? 1 : -1;
}

int
harness_list (lapse_t *client, const char *node,
              void (*fn) (const char *id, void *arg), void *arg)
{
    char after[MSG_ID_MAX + 1] = "";
    int count = 0;

    for (;;) {
        msg_t request = { .type = MSG_LIST };
        request.u.list.limit = MSG_PAGE_MAX;
        request.u.list.after = msg_str (after);
        request.u.list.node = msg_str (node);
        msg_t reply = { 0 };
        if (lapse_request (client, &request, &reply) != 0) {
            msg_release (&reply);
            return -1;
        }

        msg_result_t *result = &reply.u.result;
        for (uint32_t index = 0; index < result->clients_count; index++) {
            char id[MSG_ID_MAX + 1];
            msg_str_copy (result->clients[index].id, id, sizeof (id));
            if (fn)
                fn (id, arg);
            count++;
        }
        bool more = result->next.len > 0;
        if (more)
            msg_str_copy (result->next, after, sizeof (after));
        msg_release (&reply);
        if (!more)
            return count;
    }
}

zsock_t *
harness_event_socket (harness_t *self)
{
    zsock_t *socket = zsock_new (ZMQ_SUB);
    if (!socket)
        return NULL;
    zsock_set_subscribe (socket, MSG_TOPIC_EVICTED);
    if (zsock_connect (socket, "%s", self->events) != 0)
        zsock_destroy (&socket);
    return socket;
}

int
harness_event_receive (zsock_t *socket, harness_event_t *event,
                       int timeout_ms)
{
    zsock_set_rcvtimeo (socket, timeout_ms);
    zmsg_t *message = zmsg_recv (socket);
    if (!message)
        return 0;

    int rc = -1;
    msg_t msg = { 0 };
    msg_failure_t failure;
    zframe_t *topic = zmsg_first (message);
    zframe_t *body = zmsg_next (message);
    if (zmsg_size (message) == 2
        && msg_decode (zframe_data (body), zframe_size (body), &msg,
                       &failure) == 0
        && msg.type == MSG_EVENT) {
        s_event_copy (&msg.u.event, event);
        char expected[sizeof (MSG_TOPIC_EVICTED) + MSG_NODE_MAX];
        snprintf (expected, sizeof (expected), "%s%s", MSG_TOPIC_EVICTED,
                  event->node);
        if (zframe_streq (topic, expected))
            rc = 1;
    }
    msg_release (&msg);
    zmsg_destroy (&message);
    return rc;
}

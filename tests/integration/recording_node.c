/*  lapse-recording-node: an API node for the integration tests that
    writes down everything the registry acknowledged, so that a test can
    check what a crash or a hostile peer may have lost.

    It registers clients NODE-1, NODE-2, ... one per register interval up
    to --clients, deregisters every --deregister-every'th one right after
    its registration, and touches every registered client except each
    --quiet-every'th one once per touch interval.  Quiet clients are
    never touched, so sweeps evict them.  Each client id is registered
    once and never again.

    stdout gets one record per line, flushed at once:

        registered ID SENT_MS     the registration was acknowledged
        deregistered ID SENT_MS   the deregistration was acknowledged
        unknown ID                a touch reply listed ID as unknown
        error OP MESSAGE          a request failed (not while stopping)

    and at the end, after SIGTERM or SIGINT:

        acked ID SENT_MS          per client, the send time of its newest
                                  acknowledged registration or touch
        summary requests=N errors=N

    SENT_MS is the wall clock just before the request was sent, so the
    registry applied the request at or after it.
*/
#include <czmq.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lapse.h"
#include "protocol.h"

#define PROGRAM "lapse-recording-node"
#define EXIT_USAGE 2
#define IDLE_SLEEP_MS 1

typedef struct {
    const char *commands;
    const char *node;
    uint32_t clients;           /* clients to register at most */
    int64_t register_interval_ms;
    int64_t touch_interval_ms;
    int timeout_ms;
    uint32_t quiet_every;       /* 0: every client is touched */
    uint32_t deregister_every;  /* 0: none is deregistered */
} options_t;

typedef struct {
    options_t options;
    lapse_t *lapse;
    uint32_t registered_count;  /* clients 1 .. registered_count tried */
    bool *live;                 /* [n - 1]: client n registered and not
                                   known to be removed */
    int64_t *acked_ms;          /* [n - 1]: newest acknowledged send
                                   time, 0 when none */
    int64_t next_register;      /* monotonic ms */
    int64_t next_touch;
    uint64_t requests;
    uint64_t errors;
} node_t;

static void
s_usage (void)
{
    fprintf (stderr,
             "usage: " PROGRAM " --commands ENDPOINT --node NAME\n"
             "    [--clients N] [--register-interval MS]\n"
             "    [--touch-interval MS] [--timeout MS]\n"
             "    [--quiet-every N] [--deregister-every N]\n");
}

/*  Parses a decimal number of at most max.  Returns 0, or -1 with a
    message on stderr.  */
static int
s_parse_number (const char *name, const char *text, uint64_t max,
                uint64_t *value)
{
    char *end = NULL;
    unsigned long long parsed = strtoull (text, &end, 10);
    if (*text == '\0' || *end != '\0' || parsed > max) {
        fprintf (stderr,
                 PROGRAM ": invalid value \"%s\" for --%s: expected a "
                 "number from 0 to %" PRIu64 "\n",
                 text, name, max);
        return -1;
    }
    *value = parsed;
    return 0;
}

static int
s_parse_options (int argc, char **argv, options_t *options)
{
    static const struct option long_options[] = {
        { "commands", required_argument, NULL, 'c' },
        { "node", required_argument, NULL, 'n' },
        { "clients", required_argument, NULL, 'N' },
        { "register-interval", required_argument, NULL, 'r' },
        { "touch-interval", required_argument, NULL, 't' },
        { "timeout", required_argument, NULL, 'T' },
        { "quiet-every", required_argument, NULL, 'q' },
        { "deregister-every", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 }
    };
    *options = (options_t) { .clients = 100, .register_interval_ms = 10,
                             .touch_interval_ms = 250, .timeout_ms = 2000 };
    int option;
    uint64_t value = 0;
    while ((option = getopt_long (argc, argv, "", long_options, NULL))
           != -1) {
        const char *name = NULL;
        for (size_t index = 0; long_options[index].name; index++)
            if (long_options[index].val == option)
                name = long_options[index].name;
        if (option == 'c')
            options->commands = optarg;
        else if (option == 'n')
            options->node = optarg;
        else if (!name || s_parse_number (name, optarg, 10000000, &value))
            return -1;
        else if (option == 'N')
            options->clients = (uint32_t) value;
        else if (option == 'r')
            options->register_interval_ms = (int64_t) value;
        else if (option == 't')
            options->touch_interval_ms = value > 0 ? (int64_t) value : 1;
        else if (option == 'T')
            options->timeout_ms = value > 0 ? (int) value : 1;
        else if (option == 'q')
            options->quiet_every = (uint32_t) value;
        else if (option == 'd')
            options->deregister_every = (uint32_t) value;
    }
    if (!options->commands || !options->node || optind != argc) {
        s_usage ();
        return -1;
    }
    return 0;
}

static char *
s_client_id (node_t *self, uint32_t number, char *buffer, size_t size)
{
    snprintf (buffer, size, "%s-%" PRIu32, self->options.node, number);
    return buffer;
}

static bool
s_every (uint32_t number, uint32_t every)
{
    return every > 0 && number % every == 0;
}

/*  Records a failed request, unless the failure is the stop signal
    interrupting it.  */
static void
s_record_error (node_t *self, const char *op)
{
    if (zsys_interrupted)
        return;
    self->errors++;
    printf ("error %s %s\n", op, lapse_error (self->lapse));
}

static void
s_register_next (node_t *self)
{
    uint32_t number = ++self->registered_count;
    char id[MSG_ID_MAX + 1];
    s_client_id (self, number, id, sizeof (id));

    int64_t sent_ms = zclock_time ();
    self->requests++;
    if (lapse_register (self->lapse, id, NULL, 0, NULL) != 0) {
        s_record_error (self, "register");
        return;
    }
    printf ("registered %s %" PRId64 "\n", id, sent_ms);
    self->acked_ms[number - 1] = sent_ms;
    self->live[number - 1] = true;

    if (!s_every (number, self->options.deregister_every))
        return;
    sent_ms = zclock_time ();
    self->requests++;
    if (lapse_deregister (self->lapse, id) != 0) {
        s_record_error (self, "deregister");
        return;
    }
    printf ("deregistered %s %" PRId64 "\n", id, sent_ms);
    self->live[number - 1] = false;
}

/*  Returns the client number of an id of this node, or 0.  */
static uint32_t
s_client_number (node_t *self, msg_str_t id)
{
    size_t prefix = strlen (self->options.node) + 1;
    if (id.len <= prefix || id.len - prefix > 10)
        return 0;
    char digits[16];
    memcpy (digits, id.ptr + prefix, id.len - prefix);
    digits[id.len - prefix] = '\0';
    unsigned long number = strtoul (digits, NULL, 10);
    return number <= self->registered_count ? (uint32_t) number : 0;
}

/*  Sends one touch of count clients and records the reply.  */
static void
s_touch_batch (node_t *self, const uint32_t *numbers, msg_str_t *ids,
               uint32_t count)
{
    msg_t request = { .type = MSG_TOUCH };
    request.u.touch.ids = ids;
    request.u.touch.count = count;
    msg_t reply = { 0 };
    int64_t sent_ms = zclock_time ();
    self->requests++;
    if (lapse_request (self->lapse, &request, &reply) != 0) {
        s_record_error (self, "touch");
        msg_release (&reply);
        return;
    }

    //  An id listed as unknown was removed before the touch, so its
    //  newest acknowledged time stays what it was.  Every other id was
    //  touched at or after sent_ms
    msg_result_t *result = &reply.u.result;
    for (uint32_t index = 0; index < result->unknown_count; index++) {
        uint32_t number = s_client_number (self, result->unknown[index]);
        printf ("unknown %.*s\n", (int) result->unknown[index].len,
                result->unknown[index].ptr);
        if (number > 0)
            self->live[number - 1] = false;
    }
    for (uint32_t index = 0; index < count; index++)
        if (self->live[numbers[index] - 1])
            self->acked_ms[numbers[index] - 1] = sent_ms;
    msg_release (&reply);
}

/*  Touches every live client that is not quiet, in batches of at most
    MSG_TOUCH_IDS_MAX.  */
static void
s_touch_all (node_t *self)
{
    static char ids_text[MSG_TOUCH_IDS_MAX][MSG_ID_MAX + 1];
    static msg_str_t ids[MSG_TOUCH_IDS_MAX];
    static uint32_t numbers[MSG_TOUCH_IDS_MAX];
    uint32_t count = 0;

    for (uint32_t number = 1; number <= self->registered_count; number++) {
        if (!self->live[number - 1]
            || s_every (number, self->options.quiet_every))
            continue;
        s_client_id (self, number, ids_text[count], sizeof (ids_text[0]));
        ids[count] = msg_str (ids_text[count]);
        numbers[count++] = number;
        if (count == MSG_TOUCH_IDS_MAX) {
            s_touch_batch (self, numbers, ids, count);
            count = 0;
        }
    }
    if (count > 0)
        s_touch_batch (self, numbers, ids, count);
}

static void
s_run (node_t *self)
{
    while (!zsys_interrupted) {
        int64_t now = zclock_mono ();
        bool idle = true;
        if (self->registered_count < self->options.clients
            && now >= self->next_register) {
            s_register_next (self);
            self->next_register = now + self->options.register_interval_ms;
            idle = false;
        }
        if (now >= self->next_touch) {
            s_touch_all (self);
            self->next_touch = now + self->options.touch_interval_ms;
            idle = false;
        }
        if (idle)
            zclock_sleep (IDLE_SLEEP_MS);
    }
}

static void
s_print_acked (node_t *self)
{
    for (uint32_t number = 1; number <= self->registered_count; number++) {
        if (self->acked_ms[number - 1] == 0)
            continue;
        char id[MSG_ID_MAX + 1];
        printf ("acked %s %" PRId64 "\n",
                s_client_id (self, number, id, sizeof (id)),
                self->acked_ms[number - 1]);
    }
    printf ("summary requests=%" PRIu64 " errors=%" PRIu64 "\n",
            self->requests, self->errors);
}

int
main (int argc, char **argv)
{
    node_t self = { 0 };
    if (s_parse_options (argc, argv, &self.options) != 0)
        return EXIT_USAGE;
    setvbuf (stdout, NULL, _IOLBF, 0);

    zsys_init ();
    self.lapse = lapse_new (self.options.commands, self.options.node);
    self.live = calloc (self.options.clients + 1, sizeof (bool));
    self.acked_ms = calloc (self.options.clients + 1, sizeof (int64_t));
    if (!self.lapse || !self.live || !self.acked_ms) {
        fprintf (stderr, PROGRAM ": start failed: invalid endpoint or node "
                 "name, or out of memory\n");
        return 1;
    }
    lapse_set_timeout (self.lapse, self.options.timeout_ms);

    s_run (&self);
    s_print_acked (&self);
    lapse_destroy (&self.lapse);
    free (self.live);
    free (self.acked_ms);
    return 0;
}

/*  Malformed and hostile input on the command and tick sockets.  Every
    bad command gets an error reply with the right code.  Every bad tick
    is counted and dropped without a sweep.  An oversized message is
    dropped by the socket.  A well-behaved client is served throughout.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "harness.h"

#define REPLY_TIMEOUT_MS 3000

/*  One key and value of a crafted body.  */
typedef enum {
    VALUE_STR,      /* text */
    VALUE_UINT,     /* number */
    VALUE_INT,      /* number, packed signed even when positive */
    VALUE_BOOL,     /* number != 0 */
    VALUE_NIL,
    VALUE_BIN,      /* number bytes */
    VALUE_LONG_STR, /* number bytes of 'x' */
    VALUE_IDS       /* array of number ids; text, if set, as the last */
} value_kind_t;

typedef struct {
    const char *key;
    value_kind_t kind;
    const char *text;
    int64_t number;
} field_t;

#define FIELDS_MAX 8

/*  A body to send, the error code the reply must carry, and a word the
    reply's message must contain (the offending field).  */
typedef struct {
    const char *name;
    field_t fields[FIELDS_MAX];
    msg_error_code_t code;
    const char *mention;
    uint64_t echoed_req;    /* the req the reply must carry, or 0 */
} case_t;

#define V1 { "v", VALUE_UINT, NULL, 1 }
#define TYPE(name) { "type", VALUE_STR, name, 0 }
#define REQ(number) { "req", VALUE_UINT, NULL, number }

static const case_t s_cases[] = {
    { "version 2", { { "v", VALUE_UINT, NULL, 2 }, TYPE ("stats"),
      REQ (41) }, MSG_ERR_UNSUPPORTED_VERSION, "version", 41 },
    { "version missing", { TYPE ("stats"), REQ (42) },
      MSG_ERR_BAD_REQUEST, "v", 0 },
    { "version as a string", { { "v", VALUE_STR, "1", 0 }, TYPE ("stats") },
      MSG_ERR_BAD_REQUEST, "v", 0 },
    { "unknown type", { V1, TYPE ("explode"), REQ (43) },
      MSG_ERR_UNKNOWN_TYPE, "explode", 0 },
    { "type as an integer", { V1, { "type", VALUE_UINT, NULL, 3 } },
      MSG_ERR_BAD_REQUEST, "type", 0 },
    { "type missing", { V1, REQ (44) }, MSG_ERR_BAD_REQUEST, "type", 0 },
    { "req negative", { V1, TYPE ("stats"), { "req", VALUE_INT, NULL, -5 } },
      MSG_ERR_BAD_REQUEST, "req", 0 },
    { "not a command", { V1, TYPE ("tick"),
      { "scheduler", VALUE_STR, "s", 0 }, { "seq", VALUE_UINT, NULL, 1 },
      { "sent_ms", VALUE_INT, NULL, 1 },
      { "interval_ms", VALUE_INT, NULL, 100 } },
      MSG_ERR_BAD_REQUEST, "tick", 0 },
    { "unknown key", { V1, TYPE ("stats"), REQ (45),
      { "colour", VALUE_STR, "red", 0 } }, MSG_ERR_BAD_REQUEST, "colour",
      45 },
    { "duplicate key", { V1, TYPE ("stats"), REQ (46), REQ (47) },
      MSG_ERR_BAD_REQUEST, "req", 0 },
    { "register id missing", { V1, TYPE ("register"), REQ (48),
      { "node", VALUE_STR, "n", 0 } }, MSG_ERR_BAD_REQUEST, "id", 48 },
    { "register id as an integer", { V1, TYPE ("register"), REQ (49),
      { "id", VALUE_UINT, NULL, 7 }, { "node", VALUE_STR, "n", 0 } },
      MSG_ERR_BAD_REQUEST, "id", 49 },
    { "register id empty", { V1, TYPE ("register"), REQ (50),
      { "id", VALUE_STR, "", 0 }, { "node", VALUE_STR, "n", 0 } },
      MSG_ERR_BAD_REQUEST, "id", 50 },
    { "register id with a space", { V1, TYPE ("register"), REQ (51),
      { "id", VALUE_STR, "a b", 0 }, { "node", VALUE_STR, "n", 0 } },
      MSG_ERR_BAD_REQUEST, "id", 51 },
    { "register id too long", { V1, TYPE ("register"), REQ (52),
      { "id", VALUE_LONG_STR, NULL, MSG_ID_MAX + 1 },
      { "node", VALUE_STR, "n", 0 } }, MSG_ERR_LIMIT_EXCEEDED, "id", 52 },
    { "register node invalid", { V1, TYPE ("register"), REQ (53),
      { "id", VALUE_STR, "x", 0 }, { "node", VALUE_STR, "no/de", 0 } },
      MSG_ERR_BAD_REQUEST, "node", 53 },
    { "register node nil", { V1, TYPE ("register"), REQ (54),
      { "id", VALUE_STR, "x", 0 }, { "node", VALUE_NIL, NULL, 0 } },
      MSG_ERR_BAD_REQUEST, "node", 54 },
    { "register meta as a string", { V1, TYPE ("register"), REQ (55),
      { "id", VALUE_STR, "x", 0 }, { "node", VALUE_STR, "n", 0 },
      { "meta", VALUE_STR, "text", 0 } }, MSG_ERR_BAD_REQUEST, "meta", 55 },
    { "register meta too long", { V1, TYPE ("register"), REQ (56),
      { "id", VALUE_STR, "x", 0 }, { "node", VALUE_STR, "n", 0 },
      { "meta", VALUE_BIN, NULL, MSG_META_MAX + 1 } },
      MSG_ERR_LIMIT_EXCEEDED, "meta", 56 },
    { "touch no ids", { V1, TYPE ("touch"), REQ (57),
      { "ids", VALUE_IDS, NULL, 0 } }, MSG_ERR_BAD_REQUEST, "ids", 57 },
    { "touch too many ids", { V1, TYPE ("touch"), REQ (58),
      { "ids", VALUE_IDS, NULL, MSG_TOUCH_IDS_MAX + 1 } },
      MSG_ERR_LIMIT_EXCEEDED, "ids", 58 },
    { "touch one id invalid", { V1, TYPE ("touch"), REQ (59),
      { "ids", VALUE_IDS, "bad id", 4 } }, MSG_ERR_BAD_REQUEST, "ids[3]",
      59 },
    { "touch ids as a string", { V1, TYPE ("touch"), REQ (60),
      { "ids", VALUE_STR, "a", 0 } }, MSG_ERR_BAD_REQUEST, "ids", 60 },
    { "get id too long", { V1, TYPE ("get"), REQ (61),
      { "id", VALUE_LONG_STR, NULL, 5000 } }, MSG_ERR_LIMIT_EXCEEDED, "id",
      61 },
    { "list limit zero", { V1, TYPE ("list"), REQ (62),
      { "limit", VALUE_UINT, NULL, 0 } }, MSG_ERR_BAD_REQUEST, "limit", 62 },
    { "list limit over the page", { V1, TYPE ("list"), REQ (63),
      { "limit", VALUE_UINT, NULL, MSG_PAGE_MAX + 1 } },
      MSG_ERR_LIMIT_EXCEEDED, "limit", 63 },
    { "events since as a string", { V1, TYPE ("events"), REQ (64),
      { "since", VALUE_STR, "0", 0 }, { "limit", VALUE_UINT, NULL, 10 } },
      MSG_ERR_BAD_REQUEST, "since", 64 },
    { "sweep dry_run as an integer", { V1, TYPE ("sweep"), REQ (65),
      { "dry_run", VALUE_UINT, NULL, 1 } }, MSG_ERR_BAD_REQUEST, "dry_run",
      65 },
    { "evict id missing", { V1, TYPE ("evict"), REQ (66) },
      MSG_ERR_BAD_REQUEST, "id", 66 },
};

#define CASE_COUNT (sizeof (s_cases) / sizeof (s_cases[0]))

typedef struct {
    harness_t *harness;
    proc_t *registry;
    zsock_t *raw;       /* DEALER for crafted frames */
    lapse_t *good;      /* the well-behaved client */
    int good_count;
} world_t;

static int
s_setup (void **state)
{
    world_t *world = calloc (1, sizeof (world_t));
    *state = world;
    if (!world)
        return -1;
    world->harness = harness_new ("malformed_input");
    if (!world->harness)
        return -1;
    world->registry = harness_start_registry (world->harness, "registry",
                                              NULL, NULL);
    if (!world->registry)
        return -1;
    world->raw = zsock_new_dealer (world->harness->commands);
    world->good = harness_client (world->harness, "good-node");
    if (!world->raw || !world->good)
        return -1;
    zsock_set_rcvtimeo (world->raw, REPLY_TIMEOUT_MS);
    return 0;
}

static int
s_teardown (void **state)
{
    world_t *world = *state;
    zsock_destroy (&world->raw);
    lapse_destroy (&world->good);
    harness_destroy (&world->harness);
    free (world);
    return 0;
}

static void
s_pack_str (msgpack_packer *packer, const char *text, size_t length)
{
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, text, length);
}

static void
s_pack_value (msgpack_packer *packer, const field_t *field)
{
    char *filler = NULL;
    switch (field->kind) {
    case VALUE_STR:
        s_pack_str (packer, field->text, strlen (field->text));
        break;
    case VALUE_UINT:
        msgpack_pack_uint64 (packer, (uint64_t) field->number);
        break;
    case VALUE_INT:
        //  msgpack-c packs non-negative values as unsigned, so a
        //  negative number is the only way to force the signed form
        msgpack_pack_int64 (packer, field->number);
        break;
    case VALUE_BOOL:
        if (field->number)
            msgpack_pack_true (packer);
        else
            msgpack_pack_false (packer);
        break;
    case VALUE_NIL:
        msgpack_pack_nil (packer);
        break;
    case VALUE_BIN:
    case VALUE_LONG_STR:
        filler = malloc ((size_t) field->number + 1);
        assert_non_null (filler);
        memset (filler, field->kind == VALUE_BIN ? 'A' : 'x',
                (size_t) field->number);
        if (field->kind == VALUE_BIN) {
            msgpack_pack_bin (packer, (size_t) field->number);
            msgpack_pack_bin_body (packer, filler, (size_t) field->number);
        }
        else
            s_pack_str (packer, filler, (size_t) field->number);
        free (filler);
        break;
    case VALUE_IDS:
        msgpack_pack_array (packer, (size_t) field->number);
        for (int64_t index = 0; index < field->number; index++) {
            char id[32];
            snprintf (id, sizeof (id), "id-%" PRId64, index);
            const char *text = field->text && index == field->number - 1
                                   ? field->text
                                   : id;
            s_pack_str (packer, text, strlen (text));
        }
        break;
    }
}

/*  Packs the case's fields as one map into buffer.  */
static void
s_pack_case (const case_t *test_case, msgpack_sbuffer *buffer)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);

    size_t count = 0;
    while (count < FIELDS_MAX && test_case->fields[count].key)
        count++;
    msgpack_pack_map (&packer, count);
    for (size_t index = 0; index < count; index++) {
        const field_t *field = &test_case->fields[index];
        s_pack_str (&packer, field->key, strlen (field->key));
        s_pack_value (&packer, field);
    }
}

/*  Packs a valid request body of the given type with no other keys.  */
static void
s_pack_plain (const char *type, msgpack_sbuffer *buffer)
{
    case_t plain = { "plain", { V1, TYPE (type), REQ (1) },
                     MSG_ERR_NONE, NULL, 0 };
    s_pack_case (&plain, buffer);
}

/*  One decoded error reply.  */
typedef struct {
    msg_error_code_t code;
    uint64_t req;
    char message[MSG_TEXT_MAX + 1];
} error_reply_t;

/*  Receives one reply on the raw DEALER and checks that it is
    [empty][error body].  Fills *reply.  */
static void
s_receive_error (world_t *world, error_reply_t *reply)
{
    zmsg_t *message = zmsg_recv (world->raw);
    assert_non_null (message);
    assert_true (zmsg_size (message) >= 2);
    assert_int_equal (zframe_size (zmsg_first (message)), 0);

    zframe_t *body = zmsg_last (message);
    msg_t msg = { 0 };
    msg_failure_t failure;
    int rc = msg_decode (zframe_data (body), zframe_size (body), &msg,
                         &failure);
    if (rc != 0)
        print_error ("reply does not decode: %s\n", failure.message);
    assert_int_equal (rc, 0);
    assert_int_equal (msg.type, MSG_ERROR);
    reply->code = msg.u.error.code;
    reply->req = msg.req;
    msg_str_copy (msg.u.error.message, reply->message,
                  sizeof (reply->message));
    msg_release (&msg);
    zmsg_destroy (&message);
}

/*  Sends the given frames (a NULL data with size 0 is an empty frame)
    and expects an error reply with code.  */
static void
s_expect_error (world_t *world, zmsg_t *request, msg_error_code_t code,
                error_reply_t *reply)
{
    assert_int_equal (zmsg_send (&request, world->raw), 0);
    s_receive_error (world, reply);
    if (reply->code != code)
        print_error ("expected %s, got %s: %s\n", msg_error_code_name (code),
                     msg_error_code_name (reply->code), reply->message);
    assert_int_equal (reply->code, code);
    assert_true (strlen (reply->message) > 0);
}

static zmsg_t *
s_request (const void *body, size_t size)
{
    zmsg_t *request = zmsg_new ();
    zmsg_addmem (request, "", 0);
    zmsg_addmem (request, body, size);
    return request;
}

/*  The well-behaved client registers a new client, reads it back and
    reads the stats, all of which must succeed.  */
static void
s_check_good_client (world_t *world)
{
    char id[32];
    snprintf (id, sizeof (id), "good-%d", world->good_count++);
    bool created = false;
    assert_int_equal (lapse_register (world->good, id, NULL, 0, &created),
                      0);
    assert_true (created);
    assert_int_equal (harness_get (world->good, id, NULL), 0);
    assert_int_equal (harness_stat (world->good, "clients"),
                      (uint64_t) world->good_count);
}

static void
command_cases_get_error_replies (void **state)
{
    world_t *world = *state;
    error_reply_t reply;
    s_check_good_client (world);
    uint64_t bad_before = harness_stat (world->good, "bad_requests");

    for (size_t index = 0; index < CASE_COUNT; index++) {
        const case_t *test_case = &s_cases[index];
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        s_pack_case (test_case, &buffer);
        s_expect_error (world, s_request (buffer.data, buffer.size),
                        test_case->code, &reply);
        msgpack_sbuffer_destroy (&buffer);

        if (!strstr (reply.message, test_case->mention))
            print_error ("case \"%s\": message \"%s\" lacks \"%s\"\n",
                         test_case->name, reply.message, test_case->mention);
        assert_non_null (strstr (reply.message, test_case->mention));
        if (test_case->echoed_req)
            assert_int_equal (reply.req, test_case->echoed_req);
        s_check_good_client (world);
    }

    assert_int_equal (harness_stat (world->good, "bad_requests"),
                      bad_before + CASE_COUNT);
    assert_true (proc_log_contains (world->registry, "msg=\"bad request\""));
    assert_true (proc_running (world->registry));
}

static void
framing_cases_get_error_replies (void **state)
{
    world_t *world = *state;
    error_reply_t reply;
    uint64_t bad_before = harness_stat (world->good, "bad_requests");

    //  Bytes that are not msgpack at all (0xc1 is never used)
    const char garbage[] = "\xc1\xc1 not msgpack \xff";
    s_expect_error (world, s_request (garbage, sizeof (garbage) - 1),
                    MSG_ERR_BAD_REQUEST, &reply);
    s_check_good_client (world);

    //  An empty body
    s_expect_error (world, s_request (NULL, 0), MSG_ERR_BAD_REQUEST, &reply);
    s_check_good_client (world);

    //  Valid msgpack that is not a map: an array and an integer
    const char array[] = { (char) 0x92, 0x01, 0x02 };
    s_expect_error (world, s_request (array, sizeof (array)),
                    MSG_ERR_BAD_REQUEST, &reply);
    const char integer[] = { 0x05 };
    s_expect_error (world, s_request (integer, sizeof (integer)),
                    MSG_ERR_BAD_REQUEST, &reply);
    s_check_good_client (world);

    //  A valid stats request followed by stray bytes
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    s_pack_plain ("stats", &buffer);
    msgpack_sbuffer_write (&buffer, "\x01\x02", 2);
    s_expect_error (world, s_request (buffer.data, buffer.size),
                    MSG_ERR_BAD_REQUEST, &reply);
    msgpack_sbuffer_destroy (&buffer);
    s_check_good_client (world);

    //  One frame without the empty delimiter: the reply still comes as
    //  [empty][body]
    msgpack_sbuffer_init (&buffer);
    s_pack_plain ("stats", &buffer);
    zmsg_t *single = zmsg_new ();
    zmsg_addmem (single, buffer.data, buffer.size);
    s_expect_error (world, single, MSG_ERR_BAD_REQUEST, &reply);
    msgpack_sbuffer_destroy (&buffer);
    s_check_good_client (world);

    //  A frame between the delimiter and the body is not an envelope
    msgpack_sbuffer_init (&buffer);
    s_pack_plain ("stats", &buffer);
    zmsg_t *extra = zmsg_new ();
    zmsg_addmem (extra, "", 0);
    zmsg_addmem (extra, "x", 1);
    zmsg_addmem (extra, buffer.data, buffer.size);
    s_expect_error (world, extra, MSG_ERR_BAD_REQUEST, &reply);
    msgpack_sbuffer_destroy (&buffer);
    s_check_good_client (world);

    //  A body past MSG_SIZE_MAX that the socket still lets through
    size_t size = MSG_SIZE_MAX + 100;
    char *large = calloc (1, size);
    assert_non_null (large);
    large[0] = (char) 0x81; /* a map of one entry, never finished */
    s_expect_error (world, s_request (large, size), MSG_ERR_LIMIT_EXCEEDED,
                    &reply);
    free (large);
    s_check_good_client (world);

    assert_int_equal (harness_stat (world->good, "bad_requests"),
                      bad_before + 8);
    assert_true (proc_running (world->registry));
}

/*  A message past the socket's ZMQ_MAXMSGSIZE is dropped with the
    connection and gets no reply.  The registry goes on serving everyone
    else, and the sender too once it has reconnected.  */
static void
oversized_message_dropped (void **state)
{
    world_t *world = *state;
    uint64_t requests_before = harness_stat (world->good, "requests");

    size_t size = 2 * MSG_SIZE_MAX;
    char *huge = calloc (1, size);
    assert_non_null (huge);
    zmsg_t *request = s_request (huge, size);
    free (huge);
    assert_int_equal (zmsg_send (&request, world->raw), 0);

    zsock_set_rcvtimeo (world->raw, 1000);
    zmsg_t *reply = zmsg_recv (world->raw);
    assert_null (reply);
    zsock_set_rcvtimeo (world->raw, REPLY_TIMEOUT_MS);

    assert_true (proc_running (world->registry));
    s_check_good_client (world);
    //  Only the good client's three requests and this stats request
    //  reached the registry; the huge one never did
    assert_int_equal (harness_stat (world->good, "requests"),
                      requests_before + 4);

    //  The DEALER reconnects by itself and is served again
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    case_t unknown = { "unknown client", { V1, TYPE ("get"), REQ (9),
                       { "id", VALUE_STR, "nobody", 0 } },
                       MSG_ERR_UNKNOWN_CLIENT, "nobody", 9 };
    s_pack_case (&unknown, &buffer);
    error_reply_t error;
    s_expect_error (world, s_request (buffer.data, buffer.size),
                    MSG_ERR_UNKNOWN_CLIENT, &error);
    assert_int_equal (error.req, 9);
    msgpack_sbuffer_destroy (&buffer);
}

static int
s_send_frames (zsock_t *socket, const char *const *frames,
               const size_t *sizes, size_t count)
{
    zmsg_t *message = zmsg_new ();
    for (size_t index = 0; index < count; index++)
        zmsg_addmem (message, frames[index], sizes[index]);
    return zmsg_send (&message, socket);
}

static void
bad_ticks_counted_without_sweep (void **state)
{
    world_t *world = *state;
    harness_t *harness = world->harness;

    //  A valid tick first: it proves the PUB is connected and subscribed
    assert_int_equal (harness_sweep (harness, world->good, 10000), 0);
    uint64_t sweeps = harness_stat (world->good, "sweeps");
    uint64_t ticks = harness_stat (world->good, "ticks");
    assert_int_equal (harness_stat (world->good, "ticks_malformed"), 0);

    msg_t tick = { .type = MSG_TICK };
    tick.u.tick.scheduler = msg_str ("bad");
    tick.u.tick.seq = 1;
    tick.u.tick.sent_ms = 1;
    tick.u.tick.interval_ms = 100;
    void *body = NULL;
    size_t body_size = 0;
    msg_failure_t failure;
    assert_int_equal (msg_encode (&tick, &body, &body_size, &failure), 0);

    msgpack_sbuffer stats;
    msgpack_sbuffer_init (&stats);
    s_pack_plain ("stats", &stats);

    zsock_t *ticker = harness->ticker;
    const char garbage[] = "\xc1 garbage";
    struct {
        const char *frames[3];
        size_t sizes[3];
        size_t count;
    } bad[] = {
        { { "tick", garbage }, { 4, sizeof (garbage) - 1 }, 2 },
        { { "tick" }, { 4 }, 1 },
        { { "tick", body, "extra" }, { 4, body_size, 5 }, 3 },
        { { "tick", "" }, { 4, 0 }, 2 },
        { { "tick", stats.data }, { 4, stats.size }, 2 },
        { { "tickle", garbage }, { 6, sizeof (garbage) - 1 }, 2 },
        { { "tickle", body }, { 6, body_size }, 2 },
    };
    size_t bad_count = sizeof (bad) / sizeof (bad[0]);
    for (size_t index = 0; index < bad_count; index++)
        assert_int_equal (s_send_frames (ticker, bad[index].frames,
                                         bad[index].sizes, bad[index].count),
                          0);
    msgpack_sbuffer_destroy (&stats);
    free (body);

    assert_eventually (harness_stat (world->good, "ticks_malformed")
                           == bad_count,
                       5000);
    assert_int_equal (harness_stat (world->good, "sweeps"), sweeps);
    assert_int_equal (harness_stat (world->good, "ticks"), ticks);
    assert_int_equal (proc_log_count (world->registry,
                                      "msg=\"malformed tick dropped\""),
                      (int) bad_count);

    //  An oversized tick is dropped by the SUB socket with the
    //  connection; the PUB reconnects and later ticks count again
    size_t huge_size = 2 * MSG_SIZE_MAX;
    char *huge = calloc (1, huge_size);
    assert_non_null (huge);
    const char *frames[] = { "tick", huge };
    size_t sizes[] = { 4, huge_size };
    assert_int_equal (s_send_frames (ticker, frames, sizes, 2), 0);
    free (huge);
    harness_sleep_ms (500);
    assert_int_equal (harness_stat (world->good, "ticks_malformed"),
                      bad_count);
    assert_true (proc_running (world->registry));

    harness_sleep_ms (1100);    /* past the default tick-min-gap */
    assert_int_equal (harness_sweep (harness, world->good, 10000), 0);
    assert_int_equal (harness_stat (world->good, "sweeps"), sweeps + 1);
    s_check_good_client (world);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (command_cases_get_error_replies,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (framing_cases_get_error_replies,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (oversized_message_dropped, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (bad_ticks_counted_without_sweep,
                                         s_setup, s_teardown),
    };
    return harness_finish (cmocka_run_group_tests (tests, NULL, NULL));
}

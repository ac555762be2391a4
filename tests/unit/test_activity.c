/*  The in-memory activity table: lookups after every mix of adds and
    removes (which exercises the backward shift of removal), touches
    that only raise activity, the pending list behind flushes, and the
    arena that holds the entries.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activity.h"

#define REFERENCE_IDS 20000

//  Enough entries of 8 to MSG_ID_MAX bytes to fill more than 10 arena
//  blocks of 1 MiB
#define MANY_IDS 200000

static void
s_id (char *buffer, size_t size, int index)
{
    snprintf (buffer, size, "client-%d", index);
}

static void
activity_add_then_get (void **state)
{
    activity_t *table = activity_new ();
    assert_non_null (table);

    assert_int_equal (activity_add (table, "a", 100), 0);
    assert_int_equal (activity_add (table, "b", 200), 0);
    assert_int_equal (activity_get (table, "a"), 100);
    assert_int_equal (activity_get (table, "b"), 200);
    assert_int_equal (activity_get (table, "c"), -1);
    assert_int_equal (activity_count (table), 2);

    //  Adding again raises the activity but never lowers it
    assert_int_equal (activity_add (table, "a", 50), 0);
    assert_int_equal (activity_get (table, "a"), 100);
    assert_int_equal (activity_add (table, "a", 150), 0);
    assert_int_equal (activity_get (table, "a"), 150);
    assert_int_equal (activity_count (table), 2);
    activity_destroy (&table);
    assert_null (table);
}

static void
activity_touch_unknown_fails (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_touch (table, "ghost", 5, 10), -1);
    assert_int_equal (activity_pending_count (table), 0);
    activity_destroy (&table);
}

static void
activity_touch_only_raises (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_add (table, "a", 100), 0);

    assert_int_equal (activity_touch (table, "a", 1, 90), 0);
    assert_int_equal (activity_get (table, "a"), 100);
    assert_int_equal (activity_pending_count (table), 0);

    assert_int_equal (activity_touch (table, "a", 1, 300), 0);
    assert_int_equal (activity_get (table, "a"), 300);
    assert_int_equal (activity_pending_count (table), 1);

    //  A second touch of a pending client does not list it twice
    assert_int_equal (activity_touch (table, "a", 1, 400), 0);
    assert_int_equal (activity_pending_count (table), 1);
    activity_destroy (&table);
}

static void
activity_touch_reads_counted_id (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_add (table, "abc", 100), 0);

    //  Touch ids are views into a message, not NUL-terminated
    const char buffer[] = "abcdef";
    assert_int_equal (activity_touch (table, buffer, 3, 200), 0);
    assert_int_equal (activity_get (table, "abc"), 200);
    assert_int_equal (activity_touch (table, buffer, 4, 200), -1);
    activity_destroy (&table);
}

static void
activity_collect_by_granularity (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_add (table, "small", 1000), 0);
    assert_int_equal (activity_add (table, "large", 1000), 0);
    assert_int_equal (activity_touch (table, "small", 5, 1200), 0);
    assert_int_equal (activity_touch (table, "large", 5, 3000), 0);

    store_activity_t updates[4];
    size_t count = activity_collect (table, 1000, INT64_MIN, updates, 4);
    assert_int_equal (count, 1);
    assert_string_equal (updates[0].id, "large");
    assert_int_equal (updates[0].last_activity_ms, 3000);

    activity_mark_stored (table, updates, count);
    assert_int_equal (activity_pending_count (table), 1);
    activity_destroy (&table);
}

static void
activity_collect_clients_at_risk (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_add (table, "small", 1000), 0);
    assert_int_equal (activity_touch (table, "small", 5, 1200), 0);

    //  A sweep with a cutoff past the stored activity needs the touch
    //  written whatever the granularity
    store_activity_t updates[4];
    size_t count = activity_collect (table, 1000, 1100, updates, 4);
    assert_int_equal (count, 1);
    assert_string_equal (updates[0].id, "small");

    activity_mark_stored (table, updates, count);
    assert_int_equal (activity_pending_count (table), 0);
    assert_int_equal (activity_collect (table, 0, INT64_MAX, updates, 4), 0);
    activity_destroy (&table);
}

static void
activity_mark_keeps_newer_touch_pending (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_add (table, "a", 1000), 0);
    assert_int_equal (activity_touch (table, "a", 1, 2000), 0);

    store_activity_t updates[1];
    assert_int_equal (activity_collect (table, 0, INT64_MIN, updates, 1),
                      1);
    assert_int_equal (activity_touch (table, "a", 1, 3000), 0);
    activity_mark_stored (table, updates, 1);

    //  The touch after collection is not in the store yet
    assert_int_equal (activity_pending_count (table), 1);
    activity_destroy (&table);
}

static void
activity_remove_drops_pending (void **state)
{
    activity_t *table = activity_new ();
    assert_int_equal (activity_add (table, "a", 1000), 0);
    assert_int_equal (activity_add (table, "b", 1000), 0);
    assert_int_equal (activity_touch (table, "a", 1, 2000), 0);
    assert_int_equal (activity_touch (table, "b", 1, 2000), 0);

    activity_remove (table, "a");
    activity_remove (table, "absent");
    assert_int_equal (activity_count (table), 1);
    assert_int_equal (activity_pending_count (table), 1);

    store_activity_t updates[2];
    assert_int_equal (activity_collect (table, 0, INT64_MIN, updates, 2),
                      1);
    assert_string_equal (updates[0].id, "b");
    activity_destroy (&table);
}

/*  Random adds and removes over a set of ids, checked against a plain
    array after every step, catch a removal that strands an entry behind
    an empty slot.  */
static void
activity_matches_reference (void **state)
{
    activity_t *table = activity_new ();
    int64_t *reference = calloc (REFERENCE_IDS, sizeof (int64_t));
    assert_non_null (reference);
    for (int index = 0; index < REFERENCE_IDS; index++)
        reference[index] = -1;

    srand (12345);
    char id[32];
    size_t present = 0;
    for (int step = 0; step < 200000; step++) {
        int index = rand () % REFERENCE_IDS;
        s_id (id, sizeof (id), index);
        if (rand () % 3 == 0) {
            activity_remove (table, id);
            if (reference[index] >= 0)
                present--;
            reference[index] = -1;
        }
        else {
            int64_t activity = step;
            assert_int_equal (activity_add (table, id, activity), 0);
            if (reference[index] < 0)
                present++;
            if (activity > reference[index])
                reference[index] = activity;
        }
    }

    assert_int_equal (activity_count (table), present);
    for (int index = 0; index < REFERENCE_IDS; index++) {
        s_id (id, sizeof (id), index);
        if (activity_get (table, id) != reference[index])
            print_error ("%s: table %lld, reference %lld\n", id,
                         (long long) activity_get (table, id),
                         (long long) reference[index]);
        assert_int_equal (activity_get (table, id), reference[index]);
    }
    free (reference);
    activity_destroy (&table);
}

/*  Writes an id of exactly length bytes (8 to MSG_ID_MAX): index in 7
    digits, padded with a letter, so indexes below 10^7 give unique ids.  */
static void
s_long_id (char *buffer, int index, size_t length)
{
    snprintf (buffer, 8, "%07d", index);
    memset (buffer + 7, 'a' + index % 26, length - 7);
    buffer[length] = '\0';
}

static int
s_compare_addresses (const void *left, const void *right)
{
    uintptr_t a = *(const uintptr_t *) left;
    uintptr_t b = *(const uintptr_t *) right;
    return a < b ? -1 : a > b;
}

/*  Collects up to max pending ids into updates and their addresses,
    sorted, into addresses.  Returns the number collected.  */
static size_t
s_collect_addresses (activity_t *table, store_activity_t *updates,
                     uintptr_t *addresses, size_t max)
{
    size_t count = activity_collect (table, 0, INT64_MIN, updates, max);
    for (size_t index = 0; index < count; index++)
        addresses[index] = (uintptr_t) updates[index].id;
    qsort (addresses, count, sizeof (uintptr_t), s_compare_addresses);
    return count;
}

static void
activity_ids_of_every_length (void **state)
{
    activity_t *table = activity_new ();
    char id[MSG_ID_MAX + 2];

    //  Each id is length letters x, so ids differ by length alone
    for (size_t length = 1; length <= MSG_ID_MAX; length++) {
        memset (id, 'x', length);
        id[length] = '\0';
        assert_int_equal (activity_add (table, id, (int64_t) length), 0);
    }
    assert_int_equal (activity_count (table), MSG_ID_MAX);

    memset (id, 'z', MSG_ID_MAX + 1);
    id[MSG_ID_MAX + 1] = '\0';
    assert_int_equal (activity_add (table, id, 1), -1);
    assert_int_equal (activity_touch (table, id, MSG_ID_MAX + 1, 1), -1);
    assert_int_equal (activity_count (table), MSG_ID_MAX);

    for (size_t length = 1; length <= MSG_ID_MAX; length++) {
        memset (id, 'x', length);
        id[length] = '\0';
        assert_int_equal (activity_get (table, id), (int64_t) length);
        assert_int_equal (activity_touch (table, id, length,
                                          1000 + (int64_t) length), 0);
    }

    //  Every collected id reads back whole, with its own activity, and
    //  consists of x only
    store_activity_t updates[MSG_ID_MAX];
    size_t count = activity_collect (table, 0, INT64_MIN, updates,
                                     MSG_ID_MAX);
    assert_int_equal (count, MSG_ID_MAX);
    for (size_t index = 0; index < count; index++) {
        size_t length = strlen (updates[index].id);
        assert_true (length >= 1 && length <= MSG_ID_MAX);
        assert_int_equal (strspn (updates[index].id, "x"), length);
        assert_int_equal (updates[index].last_activity_ms,
                          1000 + (int64_t) length);
    }
    activity_mark_stored (table, updates, count);
    assert_int_equal (activity_pending_count (table), 0);
    activity_destroy (&table);
}

/*  Removed entries go on a free list by size, so ids added after a
    removal of the same lengths take the freed entries and the table
    does not grow under churn.  */
static void
activity_reuses_removed_entries (void **state)
{
    const size_t ids = 10000;
    activity_t *table = activity_new ();
    store_activity_t *updates = calloc (ids, sizeof (*updates));
    uintptr_t *first = calloc (ids, sizeof (uintptr_t));
    uintptr_t *second = calloc (ids, sizeof (uintptr_t));
    assert_non_null (updates);
    assert_non_null (first);
    assert_non_null (second);

    char id[MSG_ID_MAX + 1];
    for (int round = 0; round < 5; round++) {
        int64_t now = 1000 * (round + 1);
        for (size_t index = 0; index < ids; index++) {
            s_long_id (id, (int) (round * ids + index), 8 + index % 40);
            assert_int_equal (activity_add (table, id, now), 0);
            assert_int_equal (activity_touch (table, id, strlen (id),
                                              now + 1), 0);
        }
        assert_int_equal (activity_count (table), ids);
        uintptr_t *addresses = round == 0 ? first : second;
        assert_int_equal (s_collect_addresses (table, updates, addresses,
                                               ids), ids);

        //  After the first round, every entry is one freed before
        if (round > 0)
            for (size_t index = 0; index < ids; index++)
                assert_non_null (bsearch (&second[index], first, ids,
                                          sizeof (uintptr_t),
                                          s_compare_addresses));

        for (size_t index = 0; index < ids; index++) {
            s_long_id (id, (int) (round * ids + index), 8 + index % 40);
            activity_remove (table, id);
            assert_int_equal (activity_get (table, id), -1);
        }
        assert_int_equal (activity_count (table), 0);
        assert_int_equal (activity_pending_count (table), 0);
    }
    free (second);
    free (first);
    free (updates);
    activity_destroy (&table);
}

/*  Fills more than 10 arena blocks with ids of 8 to MSG_ID_MAX bytes, then
    checks every id, value and pending entry through removals of half
    of them.  */
static void
activity_grows_across_blocks (void **state)
{
    activity_t *table = activity_new ();
    store_activity_t *updates = calloc (MANY_IDS, sizeof (*updates));
    assert_non_null (updates);

    char id[MSG_ID_MAX + 1];
    for (int index = 0; index < MANY_IDS; index++) {
        s_long_id (id, index, 8 + index % (MSG_ID_MAX - 7));
        assert_int_equal (activity_add (table, id, index), 0);
    }
    assert_int_equal (activity_count (table), MANY_IDS);

    for (int index = 0; index < MANY_IDS; index++) {
        s_long_id (id, index, 8 + index % (MSG_ID_MAX - 7));
        assert_int_equal (activity_get (table, id), index);
        assert_int_equal (activity_touch (table, id, strlen (id),
                                          MANY_IDS + (int64_t) index), 0);
    }
    assert_int_equal (activity_pending_count (table), MANY_IDS);

    //  Removing the even indexes moves pending entries within the list
    for (int index = 0; index < MANY_IDS; index += 2) {
        s_long_id (id, index, 8 + index % (MSG_ID_MAX - 7));
        activity_remove (table, id);
    }
    assert_int_equal (activity_count (table), MANY_IDS / 2);
    assert_int_equal (activity_pending_count (table), MANY_IDS / 2);

    size_t count = activity_collect (table, 0, INT64_MIN, updates,
                                     MANY_IDS);
    assert_int_equal (count, MANY_IDS / 2);
    for (size_t slot = 0; slot < count; slot++) {
        int index = atoi (updates[slot].id);
        s_long_id (id, index, 8 + index % (MSG_ID_MAX - 7));
        assert_int_equal (index % 2, 1);
        assert_string_equal (updates[slot].id, id);
        assert_int_equal (updates[slot].last_activity_ms,
                          MANY_IDS + (int64_t) index);
    }
    activity_mark_stored (table, updates, count);
    assert_int_equal (activity_pending_count (table), 0);

    for (int index = 0; index < MANY_IDS; index++) {
        s_long_id (id, index, 8 + index % (MSG_ID_MAX - 7));
        int64_t expected = index % 2 ? MANY_IDS + (int64_t) index : -1;
        assert_int_equal (activity_get (table, id), expected);
    }
    free (updates);
    activity_destroy (&table);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (activity_add_then_get),
        cmocka_unit_test (activity_touch_unknown_fails),
        cmocka_unit_test (activity_touch_only_raises),
        cmocka_unit_test (activity_touch_reads_counted_id),
        cmocka_unit_test (activity_collect_by_granularity),
        cmocka_unit_test (activity_collect_clients_at_risk),
        cmocka_unit_test (activity_mark_keeps_newer_touch_pending),
        cmocka_unit_test (activity_remove_drops_pending),
        cmocka_unit_test (activity_matches_reference),
        cmocka_unit_test (activity_ids_of_every_length),
        cmocka_unit_test (activity_reuses_removed_entries),
        cmocka_unit_test (activity_grows_across_blocks),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

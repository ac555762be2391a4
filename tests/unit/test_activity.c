/*  The in-memory activity table: lookups after every mix of adds and
    removes (which exercises the backward shift of removal), touches
    that only raise activity, and the pending list behind flushes.  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "activity.h"

#define REFERENCE_IDS 20000

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
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

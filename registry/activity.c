/*  activity.c: the in-memory activity table behind the touch path.

    Entries live in a czmq zhashx keyed by the entry's own id, so the id
    is stored once.  Pending entries (activity ahead of the store) are
    also listed in an array, each entry knowing its slot, so that adding
    and removing a pending entry is O(1) and a flush visits only pending
    entries.
*/
#include <czmq.h>
#include <string.h>

#include "activity.h"

#define NOT_PENDING SIZE_MAX

typedef struct {
    int64_t activity_ms;        /* newest activity seen */
    int64_t stored_ms;          /* activity as last written to the store */
    size_t pending_slot;        /* index in pending, or NOT_PENDING */
    char id[];
} entry_t;

struct activity_t {
    zhashx_t *entries;          /* id -> entry_t, owns the entries */
    entry_t **pending;
    size_t pending_count;
    size_t pending_capacity;
};

static void
s_entry_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

activity_t *
activity_new (void)
{
    activity_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;

    self->entries = zhashx_new ();
    if (!self->entries) {
        free (self);
        return NULL;
    }
    //  Keys point into the entries themselves, which the destructor frees
    zhashx_set_key_duplicator (self->entries, NULL);
    zhashx_set_key_destructor (self->entries, NULL);
    zhashx_set_destructor (self->entries, s_entry_destroy);
    return self;
}

void
activity_destroy (activity_t **self_p)
{
    if (!self_p || !*self_p)
        return;

    activity_t *self = *self_p;
    zhashx_destroy (&self->entries);
    free (self->pending);
    free (self);
    *self_p = NULL;
}

static int
s_pending_add (activity_t *self, entry_t *entry)
{
    if (entry->pending_slot != NOT_PENDING)
        return 0;

    if (self->pending_count == self->pending_capacity) {
        size_t capacity = self->pending_capacity ? self->pending_capacity * 2
                                                 : 1024;
        entry_t **grown = realloc (self->pending,
                                   capacity * sizeof (*grown));
        if (!grown)
            return -1;
        self->pending = grown;
        self->pending_capacity = capacity;
    }
    entry->pending_slot = self->pending_count;
    self->pending[self->pending_count++] = entry;
    return 0;
}

static void
s_pending_remove (activity_t *self, entry_t *entry)
{
    if (entry->pending_slot == NOT_PENDING)
        return;

    entry_t *last = self->pending[--self->pending_count];
    self->pending[entry->pending_slot] = last;
    last->pending_slot = entry->pending_slot;
    entry->pending_slot = NOT_PENDING;
}

int
activity_add (activity_t *self, const char *id, int64_t stored_ms)
{
    entry_t *entry = zhashx_lookup (self->entries, id);
    if (entry) {
        if (stored_ms > entry->stored_ms)
            entry->stored_ms = stored_ms;
        if (stored_ms > entry->activity_ms)
            entry->activity_ms = stored_ms;
        if (entry->activity_ms <= entry->stored_ms)
            s_pending_remove (self, entry);
        return 0;
    }

    size_t id_len = strlen (id);
    entry = malloc (sizeof (*entry) + id_len + 1);
    if (!entry)
        return -1;
    entry->activity_ms = stored_ms;
    entry->stored_ms = stored_ms;
    entry->pending_slot = NOT_PENDING;
    memcpy (entry->id, id, id_len + 1);

    if (zhashx_insert (self->entries, entry->id, entry) != 0) {
        free (entry);
        return -1;
    }
    return 0;
}

void
activity_remove (activity_t *self, const char *id)
{
    entry_t *entry = zhashx_lookup (self->entries, id);
    if (!entry)
        return;

    s_pending_remove (self, entry);
    zhashx_delete (self->entries, id);
}

int
activity_touch (activity_t *self, const char *id, size_t id_len,
                int64_t now_ms)
{
    char key[MSG_ID_MAX + 1];
    if (id_len > MSG_ID_MAX)
        return -1;
    memcpy (key, id, id_len);
    key[id_len] = '\0';

    entry_t *entry = zhashx_lookup (self->entries, key);
    if (!entry)
        return -1;

    if (now_ms > entry->activity_ms) {
        entry->activity_ms = now_ms;
        //  On allocation failure the touch stays in memory only; the
        //  next touch of the same client retries the listing
        s_pending_add (self, entry);
    }
    return 0;
}

int64_t
activity_get (activity_t *self, const char *id)
{
    entry_t *entry = zhashx_lookup (self->entries, id);
    return entry ? entry->activity_ms : -1;
}

size_t
activity_count (activity_t *self)
{
    return zhashx_size (self->entries);
}

size_t
activity_pending_count (activity_t *self)
{
    return self->pending_count;
}

size_t
activity_collect (activity_t *self, int64_t granularity_ms,
                  int64_t cutoff_ms, store_activity_t *updates, size_t max)
{
    size_t filled = 0;
    for (size_t slot = 0; slot < self->pending_count && filled < max;
         slot++) {
        entry_t *entry = self->pending[slot];
        bool moved_enough =
            entry->activity_ms - entry->stored_ms >= granularity_ms;
        bool at_risk = entry->stored_ms < cutoff_ms;
        if (!moved_enough && !at_risk)
            continue;

        updates[filled].id = entry->id;
        updates[filled].last_activity_ms = entry->activity_ms;
        filled++;
    }
    return filled;
}

void
activity_mark_stored (activity_t *self, const store_activity_t *updates,
                      size_t count)
{
    for (size_t index = 0; index < count; index++) {
        entry_t *entry = zhashx_lookup (self->entries, updates[index].id);
        if (!entry)
            continue;

        if (updates[index].last_activity_ms > entry->stored_ms)
            entry->stored_ms = updates[index].last_activity_ms;
        if (entry->activity_ms <= entry->stored_ms)
            s_pending_remove (self, entry);
    }
}

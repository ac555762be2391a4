/*  mutate.c: a msgpack-aware mutator for the protocol fuzz targets,
    linked into the libFuzzer builds only.

    Byte mutations rarely turn a valid body into one that is valid but
    for a single value at the edge of its rule: a tick seq of 0, an id of
    129 bytes, a page limit of 1001.  Those edges are where the decoder
    and encoder can disagree, so half of the mutations here unpack the
    body, change one value, key, map or array of it to an edge case, and
    pack it again.  The rest, and every body that does not unpack, go to
    libFuzzer's own byte mutations.
*/
#include "fuzz.h"
#include "msg_check.h"

#include <msgpack.h>
#include <string.h>

/*  libFuzzer's byte mutations.  */
size_t
LLVMFuzzerMutate (uint8_t *data, size_t size, size_t max_size);

size_t
LLVMFuzzerCustomMutator (uint8_t *data, size_t size, size_t max_size,
                         unsigned int seed);

/*  Values gathered from a body, of which one is mutated.  */
#define NODES_MAX 4096

typedef struct {
    uint64_t random;                    /* xorshift state */
    msgpack_zone *zone;
    msgpack_object *nodes[NODES_MAX];
    size_t count;
} s_mutator_t;

static uint64_t
s_next (s_mutator_t *self, uint64_t bound)
{
    self->random ^= self->random << 13;
    self->random ^= self->random >> 7;
    self->random ^= self->random << 17;
    return bound ? self->random % bound : 0;
}

/*  Lengths and integers at the edges of the protocol's limits.  */
static const uint64_t s_edges[] = {
    0, 1, 2, 47, 48, 49, 63, 64, 65, 127, 128, 129, 511, 512, 513, 999,
    1000, 1001, 1023, 1024, 1025, 65535, 65536, UINT32_MAX,
    (uint64_t) UINT32_MAX + 1, INT64_MAX, (uint64_t) INT64_MAX + 1,
    UINT64_MAX
};

#define EDGE_COUNT (sizeof s_edges / sizeof s_edges[0])

static void
s_collect (s_mutator_t *self, msgpack_object *object)
{
    if (self->count == NODES_MAX)
        return;
    self->nodes[self->count++] = object;

    if (object->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t index = 0; index < object->via.array.size; index++)
            s_collect (self, &object->via.array.ptr[index]);
    if (object->type == MSGPACK_OBJECT_MAP)
        for (uint32_t index = 0; index < object->via.map.size; index++) {
            s_collect (self, &object->via.map.ptr[index].key);
            s_collect (self, &object->via.map.ptr[index].val);
        }
}

static void
s_mutate_integer (s_mutator_t *self, msgpack_object *object)
{
    uint64_t value = s_edges[s_next (self, EDGE_COUNT)];
    switch (s_next (self, 4)) {
    case 0:
        value = object->via.u64 + 1;
        break;
    case 1:
        value = object->via.u64 - 1;
        break;
    default:
        break;
    }

    /*  One value in eight becomes negative, when it fits in int64_t.  */
    if (s_next (self, 8) == 0 && value != 0 && value <= INT64_MAX) {
        object->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        object->via.i64 = -(int64_t) value;
    }
    else {
        object->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        object->via.u64 = value;
    }
}

/*  Gives a string or binary value a length at an edge, filled by
    repeating its old bytes (or 'a'), then maybe one byte changed.  */
static void
s_mutate_bytes (s_mutator_t *self, msgpack_object *object)
{
    /*  The first 21 edges are the lengths, up to 1025 bytes.  */
    uint32_t length = (uint32_t) s_edges[s_next (self, 21)];
    const char *old = object->via.str.ptr;
    uint32_t old_length = object->via.str.size;
    if (old_length > 0 && s_next (self, 3) == 0)
        length = old_length + (uint32_t) s_next (self, 3) - 1;

    char *bytes = msgpack_zone_malloc (self->zone, length ? length : 1);
    if (!bytes)
        return;
    for (uint32_t index = 0; index < length; index++)
        bytes[index] = old_length ? old[index % old_length] : 'a';
    if (length > 0 && s_next (self, 2) == 0) {
        static const char odd[] = { ' ', '"', '\\', 0x7f, 0x00, '/', '~' };
        bytes[s_next (self, length)] = odd[s_next (self, sizeof odd)];
    }
    object->via.str.ptr = bytes;
    object->via.str.size = length;
}

/*  Removes, repeats or swaps items of an array or map.  */
static void
s_mutate_container (s_mutator_t *self, msgpack_object *object)
{
    bool is_map = object->type == MSGPACK_OBJECT_MAP;
    size_t item_size = is_map ? sizeof (msgpack_object_kv)
                              : sizeof (msgpack_object);
    uint32_t *count = is_map ? &object->via.map.size
                             : &object->via.array.size;
    char *items = is_map ? (char *) object->via.map.ptr
                         : (char *) object->via.array.ptr;
    if (*count == 0)
        return;

    uint32_t at = (uint32_t) s_next (self, *count);
    uint64_t choice = s_next (self, 3);
    if (choice == 0) {
        memmove (items + at * item_size, items + (at + 1) * item_size,
                 (*count - at - 1) * item_size);
        (*count)--;
        return;
    }
    if (choice == 1) {
        uint32_t other = (uint32_t) s_next (self, *count);
        char swap[sizeof (msgpack_object_kv)];
        memcpy (swap, items + at * item_size, item_size);
        memcpy (items + at * item_size, items + other * item_size,
                item_size);
        memcpy (items + other * item_size, swap, item_size);
        return;
    }

    char *grown = msgpack_zone_malloc (self->zone,
                                       (*count + 1) * item_size);
    if (!grown)
        return;
    memcpy (grown, items, *count * item_size);
    memcpy (grown + *count * item_size, items + at * item_size, item_size);
    (*count)++;
    if (is_map)
        object->via.map.ptr = (msgpack_object_kv *) grown;
    else
        object->via.array.ptr = (msgpack_object *) grown;
}

static void
s_mutate_node (s_mutator_t *self, msgpack_object *object)
{
    /*  Sometimes a value of another type.  */
    if (s_next (self, 8) == 0) {
        static const msgpack_object_type types[] = {
            MSGPACK_OBJECT_NIL, MSGPACK_OBJECT_BOOLEAN,
            MSGPACK_OBJECT_POSITIVE_INTEGER, MSGPACK_OBJECT_STR,
            MSGPACK_OBJECT_BIN
        };
        memset (object, 0, sizeof *object);
        object->type = types[s_next (self, 5)];

        /*  An empty string still needs a pointer for memcpy.  */
        object->via.str.ptr = "";
        return;
    }

    switch (object->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        s_mutate_integer (self, object);
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        s_mutate_bytes (self, object);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        object->via.boolean = !object->via.boolean;
        break;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        s_mutate_container (self, object);
        break;
    default:
        s_mutate_integer (self, object);
        break;
    }
}

/*  Unpacks data, mutates one value and packs it back into data.  Returns
    the new size, or 0 when the body does not unpack or grew past
    max_size.  */
static size_t
s_mutate_body (s_mutator_t *self, uint8_t *data, size_t size,
               size_t max_size)
{
    /*  msg_scan first, because msgpack-c allocates what a header claims
        before it reads the items.  */
    msg_failure_t failure;
    msg_check_t check;
    size_t end = 0;
    msg_check_init (&check, &failure);
    if (msg_scan (&check, data, size, &end) != 0)
        return 0;

    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0, packed = 0;
    if (msgpack_unpack_next (&unpacked, (const char *) data, end, &offset)
        == MSGPACK_UNPACK_SUCCESS) {
        self->zone = unpacked.zone;
        s_collect (self, &unpacked.data);
        s_mutate_node (self, self->nodes[s_next (self, self->count)]);

        msgpack_sbuffer buffer;
        msgpack_packer packer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        if (msgpack_pack_object (&packer, unpacked.data) == 0
            && buffer.size <= max_size) {
            memcpy (data, buffer.data, buffer.size);
            packed = buffer.size;
        }
        msgpack_sbuffer_destroy (&buffer);
    }
    msgpack_unpacked_destroy (&unpacked);
    return packed;
}

size_t
LLVMFuzzerCustomMutator (uint8_t *data, size_t size, size_t max_size,
                         unsigned int seed)
{
    s_mutator_t *self = &(s_mutator_t) { .random = seed | 1ULL << 32 };
    size_t mutated = 0;

    if (size > 0 && s_next (self, 2) == 0)
        mutated = s_mutate_body (self, data, size, max_size);
    return mutated ? mutated : LLVMFuzzerMutate (data, size, max_size);
}

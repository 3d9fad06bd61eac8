/* Buckets: records kept by the hundred thousand (a PHQ slot per person and network, an
 * envelope ledger entry per dossier and scheme) stored as fields of a fixed number of
 * hashes, each small enough to stay a Redis listpack (hash-max-listpack-entries, 128 by
 * default, and hash-max-listpack-value 2048 as deployed): ~60-80 B per record instead of
 * ~115-170 B as a key or hashtable field of its own (issue 8, docs/benchmarks.md).
 *
 * The bucket of a name is a polynomial hash of its bytes, h = (h * 31 + byte) mod
 * QP_BUCKETS, stable forever: envelope_expire.lua computes the same in Lua. QP_BUCKETS
 * (prime) keeps buckets under 128 fields up to ~300,000 records per hash family; beyond,
 * a fuller bucket becomes a hashtable, still right but heavier. Changing it would move
 * every record: it would need a new key prefix and a reader of this one. */
#ifndef QP_BUCKET_H
#define QP_BUCKET_H
#include <stddef.h>
#include <stdint.h>

#define QP_BUCKETS 4093

/* The bucket of name, in [0, QP_BUCKETS). */
uint32_t qp_bucket_of (const char *name);

/* The PHQ slot of (network, person): the bucket hash "qp:phq:NETWORK:#B" (field: the
 * person key, value: the holding dossier id) and, for stacks stored before issue 8, the
 * string key "qp:phq:NETWORK:PERSON" it replaced (read when the field is absent). '#' is
 * not a character of a person key, so the two forms never meet. */
void qp_bucket_phq_keys (const char *network, const char *person, char *bucket, size_t bucket_size,
                         char *old, size_t old_size);
#endif

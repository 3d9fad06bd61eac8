/* Buckets of small records in Redis hashes (qp_bucket.h). */
#include "qp_bucket.h"
#include <stdio.h>

uint32_t qp_bucket_of (const char *name)
{
    uint32_t h = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h * 31 + *p) % QP_BUCKETS; /* exact in Lua's doubles too */
    return h;
}

void qp_bucket_phq_keys (const char *network, const char *person, char *bucket, size_t bucket_size,
                         char *old, size_t old_size)
{
    snprintf (bucket, bucket_size, "qp:phq:%s:#%u", network, (unsigned)qp_bucket_of (person));
    snprintf (old, old_size, "qp:phq:%s:%s", network, person);
}

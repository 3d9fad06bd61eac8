/* Shared by the libFuzzer targets: the loaders under test take paths, so an input is
 * written to a file in a private temporary directory first. */
#ifndef QP_FUZZ_SUPPORT_H
#define QP_FUZZ_SUPPORT_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The process's scratch directory (created once, removed by the OS's tmp cleaning). */
static const char *s_fuzz_dir (void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf (dir, sizeof dir, "/tmp/qp-fuzz-XXXXXX");
        if (!mkdtemp (dir))
            abort ();
    }
    return dir;
}

/* Writes data to dir/name; aborts on an I/O error (not a finding). */
static void s_fuzz_write (const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen (path, "wb");
    if (!f || (size && fwrite (data, 1, size, f) != size) || fclose (f) != 0)
        abort ();
}
#endif

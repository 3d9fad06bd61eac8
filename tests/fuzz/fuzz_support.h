/* Shared by the libFuzzer targets: the loaders under test take paths, so an input is
 * written to a file in a private temporary directory first; the targets that validate
 * as intake does load the project's territory zones once (s_fuzz_zones). */
#ifndef QP_FUZZ_SUPPORT_H
#define QP_FUZZ_SUPPORT_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "zones.h" /* services/intake: every target links qp_intake_lib */

/* The process's scratch directory (created once, removed by the OS's tmp cleaning). */
static inline const char *s_fuzz_dir (void)
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
static inline void s_fuzz_write (const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen (path, "wb");
    if (!f || (size && fwrite (data, 1, size, f) != size) || fclose (f) != 0)
        abort ();
}

/* The project's data/territory-zones.csv, loaded on first use and kept for the process
 * (as qp-intake keeps it), so that the zone checks of a location are fuzzed too. The
 * source tree: $QP_SOURCE_DIR, else three levels above this header (CMake compiles with
 * absolute paths, so __FILE__ is SOURCE/tests/fuzz/fuzz_support.h). Aborts with the
 * reason when the file cannot be loaded: a broken setup, not a finding. */
static inline const intake_zones_t *s_fuzz_zones (void)
{
    static intake_zones_t *zones;
    if (zones)
        return zones;
    char root[4096], path[4200];
    const char *env = getenv ("QP_SOURCE_DIR");
    snprintf (root, sizeof root, "%s", env && *env ? env : __FILE__);
    for (int up = 0; !(env && *env) && up < 3; up++) {
        char *slash = strrchr (root, '/');
        if (!slash)
            break;
        *slash = 0;
    }
    snprintf (path, sizeof path, "%s/data/%s", root, INTAKE_ZONES_FILE);
    qp_error_t err;
    zones = intake_zones_load (path, &err);
    if (!zones) {
        fprintf (stderr, "fuzz: cannot load the zones %s: %s\n", path, err.message);
        abort ();
    }
    return zones;
}
#endif

/* qp-keygen DIR [AGENCY...]: CURVE key pairs for the partner endpoint.
 *
 *   DIR/bus.cert, DIR/bus.cert_secret        the bus's key pair (qp-bus --curve-dir DIR)
 *   DIR/agencies/AGENCY.cert                 each agency's public key, with the metadata
 *                                            agency = AGENCY: the bus's list of who is who
 *   DIR/AGENCY.cert_secret                   each agency's key pair: give it, with bus.cert,
 *                                            to the agency's component (--curve-dir)
 *
 * AGENCY is an Agency enum name (ANCT, ANRU, BANQUE_DES_TERRITOIRES, BPIFRANCE); none given:
 * all four. Existing files are kept (a key is never silently replaced); the keys are
 * never printed. Secret files are written with mode 0600. */
#include "qp_message.h"
#include <czmq.h>
#include <sys/stat.h>

static int s_pair (const char *dir, const char *name, const char *agency)
{
    char pub[1024], secret[1024];
    snprintf (secret, sizeof secret, "%s/%s.cert_secret", dir, name);
    if (agency)
        snprintf (pub, sizeof pub, "%s/agencies/%s.cert", dir, name);
    else
        snprintf (pub, sizeof pub, "%s/%s.cert", dir, name);
    if (zsys_file_exists (secret)) {
        printf ("%s: kept\n", secret);
        return 0;
    }
    zcert_t *cert = zcert_new ();
    if (!cert)
        return -1;
    zcert_set_meta (cert, "agency", "%s", agency ? agency : "");
    zcert_set_meta (cert, "created_by", "qp-keygen");
    mode_t old = umask (077);
    int rc = zcert_save_secret (cert, secret);
    umask (old);
    rc |= zcert_save_public (cert, pub);
    zcert_destroy (&cert);
    if (rc)
        fprintf (stderr, "qp-keygen: cannot write %s or %s\n", secret, pub);
    else
        printf ("%s, %s: written\n", secret, pub);
    return rc;
}

int main (int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")) {
        fprintf (argc < 2 ? stderr : stdout,
                 "usage: qp-keygen DIR [AGENCY...]\n"
                 "CURVE key pairs for the partner endpoint: DIR/bus.cert(_secret) for qp-bus,\n"
                 "DIR/agencies/AGENCY.cert (public, agency metadata) for the bus's list,\n"
                 "DIR/AGENCY.cert_secret for each agency's component. Default agencies: ANCT\n"
                 "ANRU BANQUE_DES_TERRITOIRES BPIFRANCE. Existing keys are kept.\n");
        return argc < 2 ? 2 : 0;
    }
    zsys_init ();
    const char *dir = argv[1];
    char sub[1024];
    snprintf (sub, sizeof sub, "%s/agencies", dir);
    if (zsys_dir_create ("%s", sub) != 0) {
        fprintf (stderr, "qp-keygen: cannot create %s\n", sub);
        return 1;
    }
    static const char *all[] = {"ANCT", "ANRU", "BANQUE_DES_TERRITOIRES", "BPIFRANCE"};
    int rc = s_pair (dir, "bus", NULL);
    int n = argc > 2 ? argc - 2 : 4;
    for (int i = 0; i < n; i++) {
        const char *agency = argc > 2 ? argv[2 + i] : all[i];
        bool known = false;
        for (size_t k = 1; k < qp__v1__agency__descriptor.n_values; k++)
            known |= !strcmp (qp__v1__agency__descriptor.values[k].name, agency);
        if (!known) {
            fprintf (stderr, "qp-keygen: %s is not an agency (ANCT, ANRU, "
                             "BANQUE_DES_TERRITOIRES, BPIFRANCE)\n", agency);
            return 2;
        }
        rc |= s_pair (dir, agency, agency);
    }
    return rc ? 1 : 0;
}

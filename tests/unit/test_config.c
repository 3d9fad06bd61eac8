/* qp_config: defaults, then environment, then flags. */
#include "qp_config.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    long count;
    double ratio;
    bool verbose;
    char *unset;
} cfg_t;

static cfg_t c;
static qp_config_option_t options[] = {
    {"cfg-name", QP_CFG_STRING, "alpha", "a string", &c.name, 0, 0},
    {"cfg-count", QP_CFG_INT, "5", "an int in [1, 10]", &c.count, 1, 10},
    {"cfg-ratio", QP_CFG_DOUBLE, "0.5", "a double", &c.ratio, 0, 0},
    {"cfg-verbose", QP_CFG_BOOL, "false", "a bool", &c.verbose, 0, 0},
    {"cfg-unset", QP_CFG_STRING, NULL, "a string without default", &c.unset, 0, 0},
    {NULL},
};
static const char *env_names[] = {"QP_CFG_NAME",  "QP_CFG_COUNT",  "QP_CFG_RATIO", "QP_CFG_VERBOSE",
                                  "QP_CFG_UNSET", "QP_REDIS_PORT", "QP_BUS_WORK"};

static void s_setup (void)
{
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv (env_names[i]);
    memset (&c, 0, sizeof c);
}

static void s_teardown (void)
{
    qp_config_free (options);
    s_setup ();
}

/* Parses argv given as a NULL-terminated list after the program name. */
static int s_parse (const char *const *args)
{
    char *argv[16] = {"test"};
    int argc = 1;
    while (args && args[argc - 1]) {
        ck_assert (argc < 16);
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    return qp_config_parse ("test", "config test", options, argc, argv);
}

START_TEST (test_defaults)
{
    ck_assert_int_eq (s_parse (NULL), 0);
    ck_assert_str_eq (c.name, "alpha");
    ck_assert_int_eq (c.count, 5);
    ck_assert (c.ratio == 0.5);
    ck_assert (!c.verbose);
    ck_assert_ptr_null (c.unset);
}
END_TEST

START_TEST (test_env)
{
    setenv ("QP_CFG_NAME", "beta", 1);
    setenv ("QP_CFG_COUNT", "7", 1);
    setenv ("QP_CFG_RATIO", "2.25", 1);
    setenv ("QP_CFG_VERBOSE", "yes", 1);
    setenv ("QP_CFG_UNSET", "now set", 1);
    ck_assert_int_eq (s_parse (NULL), 0);
    ck_assert_str_eq (c.name, "beta");
    ck_assert_int_eq (c.count, 7);
    ck_assert (c.ratio == 2.25);
    ck_assert (c.verbose);
    ck_assert_str_eq (c.unset, "now set");
}
END_TEST

START_TEST (test_flag_wins_over_env)
{
    setenv ("QP_CFG_NAME", "from-env", 1);
    setenv ("QP_CFG_COUNT", "7", 1);
    const char *args[] = {"--cfg-name", "from-flag", "--cfg-count=9", NULL};
    ck_assert_int_eq (s_parse (args), 0);
    ck_assert_str_eq (c.name, "from-flag");
    ck_assert_int_eq (c.count, 9);
}
END_TEST

START_TEST (test_name_equals_value)
{
    const char *args[] = {"--cfg-name=a=b", "--cfg-ratio=-1.5", "--cfg-unset=", NULL};
    ck_assert_int_eq (s_parse (args), 0);
    ck_assert_str_eq (c.name, "a=b"); /* only the first '=' splits */
    ck_assert (c.ratio == -1.5);
    ck_assert_str_eq (c.unset, "");
}
END_TEST

START_TEST (test_bool_flag)
{
    const char *args[] = {"--cfg-verbose", "--cfg-count", "3", NULL};
    ck_assert_int_eq (s_parse (args), 0);
    ck_assert (c.verbose); /* a bare bool flag means true and takes no value */
    ck_assert_int_eq (c.count, 3);
    qp_config_free (options);

    setenv ("QP_CFG_VERBOSE", "1", 1);
    const char *off[] = {"--cfg-verbose=no", NULL};
    ck_assert_int_eq (s_parse (off), 0);
    ck_assert (!c.verbose);
    qp_config_free (options);

    const char *bad[] = {"--cfg-verbose=maybe", NULL};
    ck_assert_int_eq (s_parse (bad), -1);
}
END_TEST

START_TEST (test_int_bounds)
{
    const char *lo[] = {"--cfg-count", "1", NULL};
    ck_assert_int_eq (s_parse (lo), 0);
    ck_assert_int_eq (c.count, 1);
    const char *hi[] = {"--cfg-count", "10", NULL};
    ck_assert_int_eq (s_parse (hi), 0);
    ck_assert_int_eq (c.count, 10);
    static const char *bad[] = {"0", "11", "-3", "abc", "5x", "", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"--cfg-count", bad[i], NULL};
        ck_assert_msg (s_parse (args) == -1, "count \"%s\" accepted", bad[i]);
    }
    setenv ("QP_CFG_COUNT", "42", 1);
    ck_assert_int_eq (s_parse (NULL), -1); /* the environment is checked too */
    unsetenv ("QP_CFG_COUNT");
    const char *nan[] = {"--cfg-ratio", "nan", NULL};
    ck_assert_int_eq (s_parse (nan), -1);
    const char *missing[] = {"--cfg-count", NULL};
    ck_assert_int_eq (s_parse (missing), -1);
}
END_TEST

START_TEST (test_unknown_option)
{
    const char *args[] = {"--cfg-nope", "1", NULL};
    ck_assert_int_eq (s_parse (args), -1);
    const char *prefix[] = {"--cfg-coun=3", NULL}; /* a prefix is not a match */
    ck_assert_int_eq (s_parse (prefix), -1);
    const char *positional[] = {"stray", NULL};
    ck_assert_int_eq (s_parse (positional), -1);
    const char *dashes[] = {"--", NULL};
    ck_assert_int_eq (s_parse (dashes), -1);
}
END_TEST

START_TEST (test_help)
{
    const char *args[] = {"--cfg-count", "3", "--help", NULL};
    ck_assert_int_eq (s_parse (args), 1);
    const char *shrt[] = {"-h", NULL};
    ck_assert_int_eq (s_parse (shrt), 1);
}
END_TEST

START_TEST (test_common)
{
    qp_common_config_t cc = {0};
    qp_config_option_t common[] = {QP_CONFIG_COMMON (&cc), {NULL}};
    char *argv[] = {"test", "--bus-work", "tcp://127.0.0.1:9", NULL};
    setenv ("QP_REDIS_PORT", "7000", 1);
    ck_assert_int_eq (qp_config_parse ("test", "common", common, 3, argv), 0);
    ck_assert_str_eq (cc.bus_work, "tcp://127.0.0.1:9");
    ck_assert_str_eq (cc.bus_partner, "tcp://127.0.0.1:7102");
    ck_assert_str_eq (cc.redis_host, "127.0.0.1");
    ck_assert_int_eq (cc.redis_port, 7000);
    ck_assert_str_eq (cc.log_level, "info");
    ck_assert_str_eq (cc.data_dir, "data");
    qp_config_free (common);
    ck_assert_ptr_null (cc.bus_work);
    setenv ("QP_REDIS_PORT", "70000", 1);
    ck_assert_int_eq (qp_config_parse ("test", "common", common, 1, argv), -1);
    qp_config_free (common);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("config");
    TCase *tc = tcase_create ("config");
    tcase_set_timeout (tc, 30);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_defaults);
    tcase_add_test (tc, test_env);
    tcase_add_test (tc, test_flag_wins_over_env);
    tcase_add_test (tc, test_name_equals_value);
    tcase_add_test (tc, test_bool_flag);
    tcase_add_test (tc, test_int_bounds);
    tcase_add_test (tc, test_unknown_option);
    tcase_add_test (tc, test_help);
    tcase_add_test (tc, test_common);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}

/* qp_date: ISO calendar dates as days since 1970-01-01. */
#include "qp_date.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>

START_TEST (test_parse_valid)
{
    int32_t d = -42;
    ck_assert (qp_date_parse ("1970-01-01", &d));
    ck_assert_int_eq (d, 0);
    ck_assert (qp_date_parse ("1970-01-02", &d));
    ck_assert_int_eq (d, 1);
    ck_assert (qp_date_parse ("1969-12-31", &d));
    ck_assert_int_eq (d, -1);
    ck_assert (qp_date_parse ("2000-03-01", &d));
    ck_assert_int_eq (d, 11017);
    ck_assert (qp_date_parse ("2024-12-31", &d));
    ck_assert_int_eq (d, 20088);
}
END_TEST

START_TEST (test_parse_leap_years)
{
    int32_t d;
    ck_assert (qp_date_parse ("2024-02-29", &d));  /* divisible by 4 */
    ck_assert (qp_date_parse ("2000-02-29", &d));  /* divisible by 400 */
    ck_assert (!qp_date_parse ("1900-02-29", &d)); /* divisible by 100 only */
    ck_assert (!qp_date_parse ("2100-02-29", &d));
    ck_assert (!qp_date_parse ("2023-02-29", &d));
    ck_assert (qp_date_parse ("2023-02-28", &d));
    ck_assert (!qp_date_parse ("2024-02-30", &d));
    /* 2024-02-29 is the day after 2024-02-28 and the day before 2024-03-01. */
    int32_t a, b, c;
    ck_assert (qp_date_parse ("2024-02-28", &a));
    ck_assert (qp_date_parse ("2024-02-29", &b));
    ck_assert (qp_date_parse ("2024-03-01", &c));
    ck_assert_int_eq (b, a + 1);
    ck_assert_int_eq (c, b + 1);
}
END_TEST

START_TEST (test_parse_bounds)
{
    int32_t d;
    ck_assert (qp_date_parse ("1900-01-01", &d));
    ck_assert_int_eq (d, qp_date_from_civil (1900, 1, 1));
    ck_assert (qp_date_parse ("2199-12-31", &d));
    ck_assert_int_eq (d, qp_date_from_civil (2199, 12, 31));
    ck_assert (!qp_date_parse ("1899-12-31", &d));
    ck_assert (!qp_date_parse ("2200-01-01", &d));
    ck_assert (!qp_date_parse ("0000-01-01", &d));
    ck_assert (!qp_date_parse ("9999-12-31", &d));
}
END_TEST

START_TEST (test_parse_invalid)
{
    static const char *bad[] = {
        "",           "2024",       "2024-01",     "2024-1-01",     "2024-01-1",
        "24-01-01",   "2024/01/01", "2024-01-01 ", " 2024-01-01",   "2024-01-01T00:00",
        "2024-00-10", "2024-13-01", "2024-01-00",  "2024-01-32",    "2024-04-31",
        "2024-06-31", "2024-09-31", "2024-11-31",  "2024-0a-01",    "+024-01-01",
        "2024--1-01", "2024-01--1", "abcd-ef-gh",  "2024-01-0\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t d = 12345;
        ck_assert_msg (!qp_date_parse (bad[i], &d), "\"%s\" parsed", bad[i]);
        ck_assert_msg (d == 12345, "\"%s\" changed the output", bad[i]);
    }
    int32_t d = 7;
    ck_assert (!qp_date_parse (NULL, &d));
    ck_assert_int_eq (d, 7);
    /* An embedded NUL makes the text shorter than 10 characters. */
    ck_assert (!qp_date_parse ("2024-01\0-01", &d));
}
END_TEST

START_TEST (test_format_round_trip)
{
    /* Every day in the supported range: parse (format (d)) == d, consecutive days. */
    int32_t first, last;
    ck_assert (qp_date_parse ("1900-01-01", &first));
    ck_assert (qp_date_parse ("2199-12-31", &last));
    ck_assert_int_eq (last - first + 1, 300 * 365 + 73); /* 1904..2196 less 2100 */
    for (int32_t d = first; d <= last; d++) {
        char buf[11];
        qp_date_format (d, buf);
        int32_t back = 0;
        ck_assert_msg (qp_date_parse (buf, &back), "format (%d) = \"%s\" does not parse", d, buf);
        ck_assert_int_eq (back, d);
        int y, m, dd;
        qp_date_to_civil (d, &y, &m, &dd);
        ck_assert_int_eq (qp_date_from_civil (y, m, dd), d);
    }
    char buf[11];
    qp_date_format (0, buf);
    ck_assert_str_eq (buf, "1970-01-01");
    qp_date_format (-1, buf);
    ck_assert_str_eq (buf, "1969-12-31");
    qp_date_format (11016, buf);
    ck_assert_str_eq (buf, "2000-02-29");
}
END_TEST

START_TEST (test_ms)
{
    ck_assert_int_eq (qp_date_to_ms (0), 0);
    ck_assert_int_eq (qp_date_to_ms (1), 86400000LL);
    ck_assert_int_eq (qp_date_to_ms (-1), -86400000LL);
    ck_assert_int_eq (qp_date_to_ms (100000), 8640000000000LL); /* no 32-bit overflow */
    ck_assert_int_eq (qp_date_from_ms (0), 0);
    ck_assert_int_eq (qp_date_from_ms (86399999), 0);
    ck_assert_int_eq (qp_date_from_ms (86400000), 1);
    /* Before the epoch a day starts at its midnight: floor, not truncation. */
    ck_assert_int_eq (qp_date_from_ms (-1), -1);
    ck_assert_int_eq (qp_date_from_ms (-86400000), -1);
    ck_assert_int_eq (qp_date_from_ms (-86400001), -2);
    int32_t d;
    ck_assert (qp_date_parse ("1900-01-01", &d));
    ck_assert_int_eq (qp_date_from_ms (qp_date_to_ms (d)), d);
    ck_assert_int_eq (qp_date_from_ms (qp_date_to_ms (d) + 86399999), d);
    ck_assert (qp_date_parse ("2199-12-31", &d));
    ck_assert_int_eq (qp_date_from_ms (qp_date_to_ms (d) + 43200000), d);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("date");
    TCase *tc = tcase_create ("date");
    tcase_set_timeout (tc, 30);
    tcase_add_test (tc, test_parse_valid);
    tcase_add_test (tc, test_parse_leap_years);
    tcase_add_test (tc, test_parse_bounds);
    tcase_add_test (tc, test_parse_invalid);
    tcase_add_test (tc, test_format_round_trip);
    tcase_add_test (tc, test_ms);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}

/* Civil-date arithmetic (Howard Hinnant's days_from_civil), no time zones involved:
 * business dates are calendar days. */
#include "qp_date.h"
#include <stdio.h>
#include <string.h>

int32_t qp_date_from_civil (int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void qp_date_to_civil (int32_t z, int *year, int *month, int *day)
{
    z += 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int y = yoe + era * 400;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    int d = doy - (153 * mp + 2) / 5 + 1;
    int m = mp + (mp < 10 ? 3 : -9);
    *year = y + (m <= 2);
    *month = m;
    *day = d;
}

static bool s_digits (const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool qp_date_parse (const char *text, int32_t *days)
{
    if (!text || strlen (text) != 10 || text[4] != '-' || text[7] != '-')
        return false;
    if (!s_digits (text, 4) || !s_digits (text + 5, 2) || !s_digits (text + 8, 2))
        return false;
    int y = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
    int m = (text[5] - '0') * 10 + (text[6] - '0');
    int d = (text[8] - '0') * 10 + (text[9] - '0');
    if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1)
        return false;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int max = mdays[m - 1] + (m == 2 && leap);
    if (d > max)
        return false;
    *days = qp_date_from_civil (y, m, d);
    return true;
}

void qp_date_format (int32_t days, char *buf)
{
    int y, m, d;
    qp_date_to_civil (days, &y, &m, &d);
    snprintf (buf, 11, "%04d-%02d-%02d", (y % 10000 + 10000) % 10000, (m % 13 + 13) % 13,
              (d % 32 + 32) % 32);
}

int64_t qp_date_to_ms (int32_t days) { return (int64_t) days * 86400000LL; }

int32_t qp_date_from_ms (int64_t ms)
{
    int64_t d = ms / 86400000LL;
    if (ms < 0 && ms % 86400000LL)
        d--;
    return (int32_t) d;
}

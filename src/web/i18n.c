/* i18n: locale negotiation and the formats of the buyer-facing pages. The
 * words themselves are in src/i18n_zh_cn.c and src/i18n_en.c. */
#include "i18n.h"

#include <stdbool.h>
#include <string.h>
#include "money.h"

#define ACCEPT_LANGUAGE_MAX_LEN 512
#define ACCEPT_LANGUAGE_MAX_ENTRIES 32
#define BEIJING_OFFSET_S (8 * 3600)

static const char *const *const CATALOGUES[I18N_LOCALE_COUNT] = {
    [I18N_ZH_CN] = I18N_CATALOGUE_ZH_CN,
    [I18N_EN] = I18N_CATALOGUE_EN,
};

const char *i18n_locale_name(i18n_locale_t loc)
{
    return loc == I18N_EN ? "en" : "zh-CN";
}

const char *i18n_msg(i18n_locale_t loc, i18n_msg_t id)
{
    const char *m;
    if ((unsigned)loc >= I18N_LOCALE_COUNT || (unsigned)id >= MSG_COUNT)
        return "";
    m = CATALOGUES[loc][id];
    return m ? m : "";
}

static const struct { const char *code; i18n_msg_t msg; } ERROR_MSGS[] = {
    { "link_expired", MSG_ERR_LINK_EXPIRED },
    { "bad_signature", MSG_ERR_BAD_SIGNATURE },
    { "unknown_product", MSG_ERR_UNKNOWN_PRODUCT },
    { "channel_disabled", MSG_ERR_CHANNEL_DISABLED },
    { "unsupported_method", MSG_ERR_UNSUPPORTED_METHOD },
    { "invalid_request", MSG_ERR_INVALID_REQUEST },
    { "invalid_field", MSG_ERR_INVALID_REQUEST },
    { "missing_field", MSG_ERR_INVALID_REQUEST },
    { "upstream_error", MSG_ERR_PROVIDER },
    { "upstream_timeout", MSG_ERR_PROVIDER },
    { "provider_error", MSG_ERR_PROVIDER },
    { "database_unavailable", MSG_ERR_TRY_AGAIN },
    { "not_found", MSG_ERR_NO_SUCH_PAYMENT },
    { "alipay_disabled", MSG_ERR_ALIPAY_DISABLED },
    { "order_not_open", MSG_ERR_ORDER_NOT_OPEN },
};

const char *i18n_error_msg(i18n_locale_t loc, const char *code)
{
    for (size_t i = 0; code && i < sizeof ERROR_MSGS / sizeof ERROR_MSGS[0]; i++)
        if (!strcmp(code, ERROR_MSGS[i].code))
            return i18n_msg(loc, ERROR_MSGS[i].msg);
    return i18n_msg(loc, MSG_ERR_GENERIC);
}

const char *i18n_status_msg(i18n_locale_t loc, const char *status)
{
    static const struct { const char *status; i18n_msg_t msg; } S[] = {
        { "CREATED", MSG_STATUS_CREATED }, { "PAID", MSG_STATUS_PAID },
        { "CLOSED", MSG_STATUS_CLOSED }, { "REFUNDED", MSG_STATUS_REFUNDED },
        { "PARTIALLY_REFUNDED", MSG_STATUS_PARTIALLY_REFUNDED },
    };
    for (size_t i = 0; status && i < sizeof S / sizeof S[0]; i++)
        if (!strcmp(status, S[i].status))
            return i18n_msg(loc, S[i].msg);
    return NULL;
}

/* ------------------------------------------------------- Accept-Language */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 9110 qvalue: "0" ["." 0-3 digits] or "1" ["." 0-3 zeros], as
 * thousandths; -1 when malformed. */
static int parse_qvalue(const char *s, size_t n)
{
    int v, digits = 0;
    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    v = (s[0] - '0') * 1000;
    if (n == 1)
        return v;
    if (s[1] != '.' || n > 5)
        return -1;
    for (size_t i = 2; i < n; i++) {
        int scale = digits == 0 ? 100 : digits == 1 ? 10 : 1;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v += (s[i] - '0') * scale;
        digits++;
    }
    return v > 1000 ? -1 : v;
}

/* Which locale a language range names: 0 zh, 1 en, 2 "*", -1 another
 * language, -2 malformed. */
static int range_kind(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 1 && s[0] == '*')
        return 2;
    while (i < n && is_alpha(s[i]))
        i++;
    if (i == 0 || i > 8)
        return -2;
    for (size_t j = i; j < n; j++)
        if (!is_alpha(s[j]) && !(s[j] >= '0' && s[j] <= '9') && s[j] != '-')
            return -2;
    if (i < n && s[i] != '-')
        return -2;
    if (i == 2 && lower(s[0]) == 'z' && lower(s[1]) == 'h')
        return 0;
    if (i == 2 && lower(s[0]) == 'e' && lower(s[1]) == 'n')
        return 1;
    return -1;
}

/* One entry "range[;q=v]" (other parameters are refused): kind and q. */
static bool parse_entry(const char *s, size_t n, int *kind, int *q)
{
    const char *semi = memchr(s, ';', n);
    size_t rlen = semi ? (size_t)(semi - s) : n;
    while (rlen > 0 && is_ows(s[rlen - 1]))
        rlen--;
    *kind = range_kind(s, rlen);
    *q = 1000;
    if (*kind == -2)
        return false;
    if (semi) {
        const char *p = semi + 1, *end = s + n;
        while (p < end && is_ows(*p))
            p++;
        if (end - p < 2 || lower(p[0]) != 'q' || p[1] != '=')
            return false;
        p += 2;
        while (end > p && is_ows(end[-1]))
            end--;
        *q = parse_qvalue(p, (size_t)(end - p));
        if (*q < 0)
            return false;
    }
    return true;
}

i18n_locale_t i18n_negotiate(i18n_locale_t dflt, const char *al)
{
    int best_q[3] = { -1, -1, -1 };   /* zh, en, * : first highest q */
    int best_pos[3] = { 0, 0, 0 };
    size_t len, start = 0;
    int entries = 0;
    if (!al)
        return dflt;
    len = strnlen(al, ACCEPT_LANGUAGE_MAX_LEN + 1);
    if (len > ACCEPT_LANGUAGE_MAX_LEN)
        return dflt;
    while (start <= len) {
        const char *comma = memchr(al + start, ',', len - start);
        size_t end = comma ? (size_t)(comma - al) : len;
        size_t a = start, b = end;
        int kind, q;
        while (a < b && is_ows(al[a]))
            a++;
        while (b > a && is_ows(al[b - 1]))
            b--;
        if (b > a) {
            if (++entries > ACCEPT_LANGUAGE_MAX_ENTRIES || !parse_entry(al + a, b - a, &kind, &q))
                return dflt;
            if (kind >= 0 && q > best_q[kind]) {
                best_q[kind] = q;
                best_pos[kind] = entries;
            }
        }
        start = end + 1;
    }
    /* "*" stands for the default language when it is not named itself */
    if (best_q[dflt == I18N_EN ? 1 : 0] < 0 && best_q[2] >= 0) {
        best_q[dflt == I18N_EN ? 1 : 0] = best_q[2];
        best_pos[dflt == I18N_EN ? 1 : 0] = best_pos[2];
    }
    if (best_q[0] <= 0 && best_q[1] <= 0)
        return dflt;
    if (best_q[0] != best_q[1])
        return best_q[0] > best_q[1] ? I18N_ZH_CN : I18N_EN;
    return best_pos[0] < best_pos[1] ? I18N_ZH_CN : I18N_EN;
}

/* --------------------------------------------------------------- formats */

/* The first n bytes of s, escaped as buf_append_html does. */
static pg_err append_html_n(buf_t *b, const char *s, size_t n)
{
    char one[2] = { 0, 0 };
    pg_err rc = PG_OK;
    for (size_t i = 0; i < n && rc == PG_OK; i++) {
        one[0] = s[i];
        rc = buf_append_html(b, one);
    }
    return rc;
}

pg_err i18n_append_html(buf_t *b, i18n_locale_t loc, i18n_msg_t id, const char *arg)
{
    const char *m = i18n_msg(loc, id);
    const char *hole = strstr(m, "{}");
    pg_err rc;
    if (!hole)
        return buf_append_html(b, m);
    rc = append_html_n(b, m, (size_t)(hole - m));
    if (rc == PG_OK)
        rc = buf_append_html(b, arg ? arg : "");
    if (rc == PG_OK)
        rc = buf_append_html(b, hole + 2);
    return rc;
}

static const struct { const char *code; const char *symbol; } CURRENCY_SYMBOLS[] = {
    { "cny", "\xc2\xa5" }, { "usd", "US$" }, { "eur", "\xe2\x82\xac" }, { "gbp", "\xc2\xa3" },
    { "jpy", "JP\xc2\xa5" }, { "krw", "\xe2\x82\xa9" }, { "hkd", "HK$" }, { "sgd", "S$" },
    { "aud", "A$" }, { "cad", "CA$" },
};

pg_err i18n_append_amount_in(buf_t *b, int64_t minor, const char *currency)
{
    uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    const char *symbol = NULL;
    char code[4] = "";
    if (!currency || !strcmp(currency, "cny"))
        return i18n_append_amount(b, minor);
    for (size_t i = 0; i < sizeof CURRENCY_SYMBOLS / sizeof CURRENCY_SYMBOLS[0]; i++) {
        if (!strcmp(CURRENCY_SYMBOLS[i].code, currency))
            symbol = CURRENCY_SYMBOLS[i].symbol;
    }
    if (!symbol) {   /* "CHF 12.50": the code, upper case */
        for (size_t i = 0; i < 3 && currency[i]; i++)
            code[i] = (char)(currency[i] >= 'a' && currency[i] <= 'z' ? currency[i] - 'a' + 'A' : '?');
        symbol = code;
    }
    buf_printf(b, "%s%s%s", minor < 0 ? "-" : "", symbol, symbol == code ? " " : "");
    if (money_zero_decimal(currency))
        return buf_printf(b, "%llu", (unsigned long long)mag);
    return buf_printf(b, "%llu.%02llu", (unsigned long long)(mag / 100), (unsigned long long)(mag % 100));
}

pg_err i18n_append_amount(buf_t *b, int64_t fen)
{
    uint64_t abs_fen = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    return buf_printf(b, "%s\xc2\xa5%llu.%02llu", fen < 0 ? "-" : "", (unsigned long long)(abs_fen / 100),
                      (unsigned long long)(abs_fen % 100));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil) and back: integers only, no time zone database. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    int64_t era, doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, int n, int64_t *out)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SSZ" -> seconds since the epoch */
static bool parse_iso_utc(const char *s, int64_t *t)
{
    int64_t y, mo, d, h, mi, se;
    static const int MDAYS[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (!s || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != 'Z')
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > MDAYS[mo - 1] || h > 23 || mi > 59 || se > 60)
        return false;
    *t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return true;
}

pg_err i18n_append_time(buf_t *b, i18n_locale_t loc, const char *iso_utc)
{
    int64_t t, days, secs, y, m, d;
    if (!parse_iso_utc(iso_utc, &t))
        return PG_ERR_BAD_INPUT;
    if (loc != I18N_EN)
        t += BEIJING_OFFSET_S;
    days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    secs = t - days * 86400;
    civil_from_days(days, &y, &m, &d);
    buf_printf(b, "%04lld-%02lld-%02lld %02lld:%02lld", (long long)y, (long long)m, (long long)d,
               (long long)(secs / 3600), (long long)(secs % 3600 / 60));
    return buf_append_html(b, i18n_msg(loc, MSG_TIME_ZONE));
}

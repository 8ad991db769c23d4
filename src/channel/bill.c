/* bill: parsers for the providers' daily bills (see include/bill.h).
 *
 * The only user of libzip (Alipay's zip), zlib (WeChat's gzip) and iconv
 * (Alipay's GBK). Everything is bounded: decompressed sizes, zip entries,
 * rows, fields per row; every scan runs on (pointer, length) so a fuzzer
 * cannot make it read past the input. Decompressed and converted texts live
 * in malloc'd buffers freed before returning; the rows' strings are copied
 * into the caller's arena. */
#include "bill.h"

#define ZLIB_CONST
#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>

#include "money.h"

#define BILL_MAX_FIELDS 512
#define BILL_TOTAL_MAX_FEN ((int64_t)1000000000000000)   /* bound for summary totals */
#define BILL_UTF8_BOM "\xef\xbb\xbf"

static void bill_clear(bill_t *out)
{
    memset(out, 0, sizeof *out);
}

/* ------------------------------------------------------------------ */
/* text checks and small scanners                                      */

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) without NUL. */
static size_t utf8_bad_offset(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k, need;
        unsigned cp;
        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i <= need)
            return i;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return i;
        i += need + 1;
    }
    return n;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs from both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_blank((*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((*s)[*n - 1]))
        (*n)--;
}

static int starts_with(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

/* memmem-like search bounded by n. */
static const char *find_in(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle), i;
    if (k == 0 || n < k)
        return NULL;
    for (i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0)
            return s + i;
    return NULL;
}

/* One line of [*p, end): its text without "\r\n" / "\n" / "\r". */
static int next_line(const char **p, const char *end, const char **line, size_t *len)
{
    const char *s = *p, *q = *p;
    if (s >= end)
        return 0;
    while (q < end && *q != '\n' && *q != '\r')
        q++;
    *line = s;
    *len = (size_t)(q - s);
    if (q < end && *q == '\r')
        q++;
    if (q < end && *q == '\n')
        q++;
    *p = q;
    return 1;
}

/* ------------------------------------------------------------------ */
/* money                                                               */

/* Strict yuan with an optional leading '-': "12.30", "-0.06". */
static pg_err parse_signed_yuan(const char *s, int64_t max_fen, int64_t *out)
{
    int neg = s[0] == '-';
    int64_t v;
    if (money_parse_yuan(neg ? s + 1 : s, max_fen, &v) != PG_OK)
        return PG_ERR_BAD_INPUT;
    *out = neg ? -v : v;
    return PG_OK;
}

/* WeChat 手续费: "-0.02000" -> -2. Digits, optionally '.' and 1..6
 * decimals; below a fen rounded half away from zero. */
static pg_err parse_fee_yuan(const char *s, int64_t max_fen, int64_t *out)
{
    int neg = s[0] == '-';
    const char *p = neg ? s + 1 : s, *dot;
    char whole[40];
    size_t ilen, dlen, i;
    int64_t v;
    int round_up = 0;

    dot = strchr(p, '.');
    ilen = dot != NULL ? (size_t)(dot - p) : strlen(p);
    dlen = dot != NULL ? strlen(dot + 1) : 0;
    if (ilen == 0 || ilen > 20 || (dot != NULL && (dlen == 0 || dlen > 6)))
        return PG_ERR_BAD_INPUT;
    for (i = 0; i < dlen; i++)
        if (dot[1 + i] < '0' || dot[1 + i] > '9')
            return PG_ERR_BAD_INPUT;
    /* "int.dd" for money_parse_yuan, padding missing decimals with zeros */
    memcpy(whole, p, ilen);
    whole[ilen] = '.';
    whole[ilen + 1] = dlen >= 1 ? dot[1] : '0';
    whole[ilen + 2] = dlen >= 2 ? dot[2] : '0';
    whole[ilen + 3] = '\0';
    if (money_parse_yuan(whole, max_fen, &v) != PG_OK)
        return PG_ERR_BAD_INPUT;
    if (dlen >= 3 && dot[3] >= '5')
        round_up = 1;
    if (round_up) {
        if (v >= max_fen)
            return PG_ERR_BAD_INPUT;
        v++;
    }
    *out = neg ? -v : v;
    return PG_OK;
}

static pg_err parse_count(const char *s, size_t *out)
{
    size_t v = 0, i, n = strlen(s);
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0'))
        return PG_ERR_BAD_INPUT;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PG_ERR_BAD_INPUT;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return PG_OK;
}

static int64_t magnitude(int64_t v)
{
    return v < 0 ? -v : v;
}

/* ------------------------------------------------------------------ */
/* rows                                                                */

typedef struct rows {
    arena_t *a;
    bill_row_t *items;
    size_t count, cap;
} rows_t;

static bill_row_t *rows_add(rows_t *r)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        bill_row_t *n;
        if (cap > BILL_MAX_ROWS)
            cap = BILL_MAX_ROWS;
        if (r->count >= cap)
            return NULL;
        n = arena_alloc(r->a, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        if (r->count > 0)
            memcpy(n, r->items, r->count * sizeof *n);
        r->items = n;
        r->cap = cap;
    }
    memset(&r->items[r->count], 0, sizeof r->items[0]);
    return &r->items[r->count++];
}

/* A trimmed field as an arena string (NULL on allocation failure). */
typedef struct field {
    const char *s;
    size_t n;
} field_t;

static char *fdup(arena_t *a, field_t f)
{
    return arena_strndup(a, f.s, f.n);
}

/* ------------------------------------------------------------------ */
/* columns by header name                                              */

/* Header names compare after trimming; "(元)" matches "（元）" (the ASCII
 * parentheses stand for the full-width ones in our names). */
static int name_eq(field_t h, const char *want)
{
    size_t i = 0, j = 0, wn = strlen(want);
    while (i < h.n && j < wn) {
        if (want[j] == '(' || want[j] == ')') {
            const char *fw = want[j] == '(' ? "\xef\xbc\x88" : "\xef\xbc\x89";
            if (h.s[i] == want[j]) {
                i++;
            } else if (h.n - i >= 3 && memcmp(h.s + i, fw, 3) == 0) {
                i += 3;
            } else {
                return 0;
            }
            j++;
            continue;
        }
        if (h.s[i] != want[j])
            return 0;
        i++;
        j++;
    }
    return i == h.n && j == wn;
}

/* Index of the column named by one of names ('|'-free NULL-terminated
 * list), -1 when absent, -2 when it appears twice. */
static int col_find(const field_t *hdr, size_t n, const char *const *names)
{
    int found = -1;
    size_t i, k;
    for (k = 0; names[k] != NULL; k++) {
        for (i = 0; i < n; i++) {
            if (name_eq(hdr[i], names[k])) {
                if (found >= 0 && (size_t)found != i)
                    return -2;
                found = (int)i;
            }
        }
        if (found >= 0)
            return found;
    }
    return found;
}

typedef struct colspec {
    const char *const *names;   /* the first is the one reported */
    int required;
    int *index;
} colspec_t;

static pg_err map_columns(const char *who, const field_t *hdr, size_t n, const colspec_t *spec,
                          size_t line, buf_t *err)
{
    size_t k;
    for (k = 0; spec[k].names != NULL; k++) {
        int i = col_find(hdr, n, spec[k].names);
        if (i == -2) {
            buf_set_error(err, "%s line %zu: column %s appears twice", who, line, spec[k].names[0]);
            return PG_ERR_BAD_INPUT;
        }
        if (i < 0 && spec[k].required) {
            buf_set_error(err, "%s line %zu: header has no column %s", who, line, spec[k].names[0]);
            return PG_ERR_BAD_INPUT;
        }
        *spec[k].index = i;
    }
    return PG_OK;
}

/* ------------------------------------------------------------------ */
/* CSV records (Alipay): RFC 4180 quoting, fields trimmed              */

typedef struct csv {
    const char *p, *end;
    size_t line;                 /* line where the next record starts (1-based) */
    field_t fields[BILL_MAX_FIELDS];
    size_t nfields;
    const char *raw;             /* the record's text (for '#' lines) */
    size_t raw_len;
    size_t rec_line;
    char *unq;                   /* malloc'd scratch for unquoted values */
    size_t unq_len, unq_cap;
} csv_t;

static pg_err unq_reserve(csv_t *c, size_t extra)
{
    if (c->unq_cap - c->unq_len < extra) {
        /* Fields point into this scratch: it must never move mid-record, so
         * it is sized for the whole remaining input at the first quote. */
        return PG_ERR_INTERNAL;
    }
    return PG_OK;
}

/* Reads one record. 1 = got one, 0 = end of input, <0 = error (err set). */
static int csv_next(csv_t *c, const char *who, buf_t *err)
{
    const char *p = c->p, *end = c->end;
    size_t nlines = 0;

    c->nfields = 0;
    c->unq_len = 0;
    if (p >= end)
        return 0;
    c->rec_line = c->line;
    c->raw = p;
    if (*p == '#') {
        const char *line;
        size_t len;
        (void)next_line(&c->p, end, &line, &len);
        c->raw_len = len;
        c->line++;
        return 1;
    }
    for (;;) {
        const char *fs = p;
        field_t f;
        if (c->nfields == BILL_MAX_FIELDS) {
            buf_set_error(err, "%s line %zu: more than %d fields", who, c->rec_line, BILL_MAX_FIELDS);
            return -1;
        }
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p == '"') {
            /* quoted: "" is a quote; may span lines */
            char *dst;
            if (c->unq == NULL) {
                c->unq_cap = (size_t)(end - p) + 1;
                c->unq = malloc(c->unq_cap);
                if (c->unq == NULL)
                    return -2;
            }
            if (unq_reserve(c, (size_t)(end - p)) != PG_OK) {
                buf_set_error(err, "%s: internal CSV buffer error", who);
                return -2;
            }
            dst = c->unq + c->unq_len;
            f.s = dst;
            p++;
            for (;;) {
                if (p >= end) {
                    buf_set_error(err, "%s line %zu: unterminated quoted field", who, c->rec_line);
                    return -1;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *dst++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\n')
                    nlines++;
                *dst++ = *p++;
            }
            f.n = (size_t)(dst - f.s);
            c->unq_len += f.n;
            while (p < end && is_blank(*p))
                p++;
            if (p < end && *p != ',' && *p != '\r' && *p != '\n') {
                buf_set_error(err, "%s line %zu: text after a closing quote", who, c->rec_line);
                return -1;
            }
        } else {
            p = fs;
            while (p < end && *p != ',' && *p != '\r' && *p != '\n')
                p++;
            f.s = fs;
            f.n = (size_t)(p - fs);
        }
        trim(&f.s, &f.n);
        c->fields[c->nfields++] = f;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    c->raw_len = (size_t)(p - c->raw);
    if (p < end && *p == '\r')
        p++;
    if (p < end && *p == '\n')
        p++;
    c->p = p;
    c->line += 1 + nlines;
    return 1;
}

static int csv_is_blank_record(const csv_t *c)
{
    return c->nfields == 1 && c->fields[0].n == 0;
}

/* ------------------------------------------------------------------ */
/* iconv GBK -> UTF-8                                                  */

/* Converts into a malloc'd NUL-terminated buffer (*out, caller frees). */
static pg_err gbk_to_utf8(const void *in, size_t len, char **out, size_t *out_len, const char *who,
                          buf_t *err)
{
    iconv_t cd;
    char *src = (char *)(uintptr_t)in;   /* iconv does not write its input */
    size_t left = len, cap, room;
    char *buf, *dst;
    pg_err rc = PG_OK;

    *out = NULL;
    *out_len = 0;
    if (len > BILL_MAX_UNCOMPRESSED) {
        buf_set_error(err, "%s: %zu bytes is over the %zu byte limit", who, len, BILL_MAX_UNCOMPRESSED);
        return PG_ERR_TOO_LARGE;
    }
    cd = iconv_open("UTF-8", "GBK");
    if (cd == (iconv_t)-1) {
        buf_set_error(err, "%s: iconv cannot convert GBK", who);
        return PG_ERR_INTERNAL;
    }
    cap = len + len / 2 + 16;   /* two GBK bytes -> at most three UTF-8 bytes */
    buf = malloc(cap + 1);
    if (buf == NULL) {
        iconv_close(cd);
        return PG_ERR_NOMEM;
    }
    dst = buf;
    room = cap;
    while (left > 0) {
        size_t r = iconv(cd, &src, &left, &dst, &room);
        if (r != (size_t)-1)
            break;
        if (errno == E2BIG) {
            size_t used = (size_t)(dst - buf);
            char *nb;
            if (cap > BILL_MAX_UNCOMPRESSED * 2) {
                rc = PG_ERR_TOO_LARGE;
                buf_set_error(err, "%s: converted text too large", who);
                break;
            }
            nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                rc = PG_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
            dst = buf + used;
            room = cap - used;
            continue;
        }
        buf_set_error(err, "%s: not GBK text (%s at byte %zu)", who,
                errno == EINVAL ? "truncated character" : "invalid sequence", len - left);
        rc = PG_ERR_BAD_INPUT;
        break;
    }
    if (rc == PG_OK) {
        /* flush any shift state (none for GBK, but harmless) */
        if (iconv(cd, NULL, NULL, &dst, &room) == (size_t)-1) {
            buf_set_error(err, "%s: iconv flush failed", who);
            rc = PG_ERR_BAD_INPUT;
        }
    }
    iconv_close(cd);
    if (rc != PG_OK) {
        free(buf);
        return rc;
    }
    *dst = '\0';
    *out = buf;
    *out_len = (size_t)(dst - buf);
    return PG_OK;
}

/* ------------------------------------------------------------------ */
/* Alipay detail and summary CSV                                       */

static const char *const AL_TRADE_NO[] = { "支付宝交易号", NULL };
static const char *const AL_OUT_TRADE_NO[] = { "商户订单号", NULL };
static const char *const AL_KIND[] = { "业务类型", NULL };
static const char *const AL_FINISHED[] = { "完成时间", NULL };
static const char *const AL_ORDER_AMOUNT[] = { "订单金额(元)", NULL };
static const char *const AL_RECEIVED[] = { "商家实收(元)", NULL };
static const char *const AL_REFUND_NO[] = { "退款批次号/请求号", NULL };
static const char *const AL_FEE[] = { "服务费(元)", NULL };
static const char *const AL_SUM_PAY_COUNT[] = { "交易订单总笔数", NULL };
static const char *const AL_SUM_REFUND_COUNT[] = { "退款订单总笔数", NULL };
static const char *const AL_SUM_STORE[] = { "门店编号", NULL };

#define AL_DETAIL "alipay bill"
#define AL_SUMMARY "alipay bill summary"

/* Footer "#交易合计：N笔，商家实收共X元，..." (label = 商家实收共) or
 * "#退款合计：N笔，商家实收退款共-Y元，...". 1 = parsed, 0 = another line,
 * -1 = malformed. */
static int parse_footer(const char *s, size_t n, const char *prefix, const char *label,
                        size_t *count, int64_t *fen)
{
    const char *p, *q, *end = s + n;
    char num[40];
    size_t k;

    if (!starts_with(s, n, prefix))
        return 0;
    p = s + strlen(prefix);
    if (starts_with(p, (size_t)(end - p), "\xef\xbc\x9a"))   /* ： */
        p += 3;
    else if (p < end && *p == ':')
        p++;
    else
        return -1;
    for (q = p; q < end && *q >= '0' && *q <= '9'; q++)
        ;
    k = (size_t)(q - p);
    if (k == 0 || k >= sizeof num)
        return -1;
    memcpy(num, p, k);
    num[k] = '\0';
    if (parse_count(num, count) != PG_OK || !starts_with(q, (size_t)(end - q), "笔"))
        return -1;
    p = find_in(q, (size_t)(end - q), label);
    if (p == NULL)
        return -1;
    p += strlen(label);
    q = find_in(p, (size_t)(end - p), "元");
    if (q == NULL || (size_t)(q - p) >= sizeof num || q == p)
        return -1;
    memcpy(num, p, (size_t)(q - p));
    num[q - p] = '\0';
    if (parse_signed_yuan(num, BILL_TOTAL_MAX_FEN, fen) != PG_OK)
        return -1;
    return 1;
}

typedef struct al_cols {
    int trade_no, out_trade_no, kind, finished, order_amount, received, refund_no, fee;
} al_cols_t;

static pg_err al_row(arena_t *a, const csv_t *c, const al_cols_t *col, size_t hdr_n, rows_t *rows,
                     size_t *pay_count, size_t *refund_count, buf_t *err)
{
    const field_t *f = c->fields;
    bill_row_t *r;
    field_t kind;
    int64_t v;
    size_t i;

    if (c->nfields < hdr_n) {
        buf_set_error(err, AL_DETAIL " line %zu: %zu fields where the header has %zu", c->rec_line,
                c->nfields, hdr_n);
        return PG_ERR_BAD_INPUT;
    }
    for (i = hdr_n; i < c->nfields; i++) {
        if (f[i].n != 0) {
            buf_set_error(err, AL_DETAIL " line %zu: %zu fields where the header has %zu", c->rec_line,
                    c->nfields, hdr_n);
            return PG_ERR_BAD_INPUT;
        }
    }
    if ((r = rows_add(rows)) == NULL) {
        buf_set_error(err, AL_DETAIL ": more than %zu rows", (size_t)BILL_MAX_ROWS);
        return rows->count >= BILL_MAX_ROWS ? PG_ERR_TOO_LARGE : PG_ERR_NOMEM;
    }
    r->line = c->rec_line;
    kind = f[col->kind];
    if (kind.n == strlen("交易") && memcmp(kind.s, "交易", kind.n) == 0) {
        r->kind = BILL_PAYMENT;
        (*pay_count)++;
    } else if (kind.n == strlen("退款") && memcmp(kind.s, "退款", kind.n) == 0) {
        r->kind = BILL_REFUND;
        (*refund_count)++;
    } else {
        buf_set_error(err, AL_DETAIL " line %zu: 业务类型 \"%.*s\" is neither 交易 nor 退款", c->rec_line,
                (int)(kind.n > 64 ? 64 : kind.n), kind.s);
        return PG_ERR_BAD_INPUT;
    }
    if (f[col->trade_no].n == 0) {
        buf_set_error(err, AL_DETAIL " line %zu: empty 支付宝交易号", c->rec_line);
        return PG_ERR_BAD_INPUT;
    }
    r->status = fdup(a, kind);
    r->provider_trade_no = fdup(a, f[col->trade_no]);
    r->out_trade_no = fdup(a, f[col->out_trade_no]);
    r->finished_at = fdup(a, f[col->finished]);
    if (r->status == NULL || r->provider_trade_no == NULL || r->out_trade_no == NULL ||
        r->finished_at == NULL)
        return PG_ERR_NOMEM;
    if (r->kind == BILL_PAYMENT) {
        char *s = fdup(a, f[col->order_amount]);
        if (s == NULL)
            return PG_ERR_NOMEM;
        if (parse_signed_yuan(s, MONEY_MAX_FEN, &v) != PG_OK || v < 0) {
            buf_set_error(err, AL_DETAIL " line %zu: bad 订单金额 \"%.40s\"", c->rec_line, s);
            return PG_ERR_BAD_INPUT;
        }
        r->amount_fen = v;
    } else {
        char *s = fdup(a, f[col->received]);
        if (s == NULL)
            return PG_ERR_NOMEM;
        if (parse_signed_yuan(s, MONEY_MAX_FEN, &v) != PG_OK) {
            buf_set_error(err, AL_DETAIL " line %zu: bad 商家实收 \"%.40s\"", c->rec_line, s);
            return PG_ERR_BAD_INPUT;
        }
        r->amount_fen = magnitude(v);
        if (f[col->refund_no].n > 0 && (r->out_refund_no = fdup(a, f[col->refund_no])) == NULL)
            return PG_ERR_NOMEM;
    }
    {
        char *s = fdup(a, f[col->fee]);
        if (s == NULL)
            return PG_ERR_NOMEM;
        if (parse_signed_yuan(s, MONEY_MAX_FEN, &v) != PG_OK) {
            buf_set_error(err, AL_DETAIL " line %zu: bad 服务费 \"%.40s\"", c->rec_line, s);
            return PG_ERR_BAD_INPUT;
        }
        r->fee_fen = -v;   /* the bill writes the merchant's side: -fee charged, +fee returned */
    }
    return PG_OK;
}

/* Parses the detail CSV (UTF-8, already checked). */
static pg_err alipay_detail(arena_t *a, const char *text, size_t len, bill_t *out, buf_t *err)
{
    csv_t *c;
    rows_t rows = { a, NULL, 0, 0 };
    al_cols_t col;
    field_t hdr[BILL_MAX_FIELDS];
    size_t hdr_n = 0, pay_count = 0, refund_count = 0;
    size_t foot_pay_n = 0, foot_refund_n = 0;
    int64_t foot_pay = 0, foot_refund = 0;
    int have_hdr = 0, have_pay_foot = 0, have_refund_foot = 0, got;
    pg_err rc = PG_OK;

    c = calloc(1, sizeof *c);
    if (c == NULL)
        return PG_ERR_NOMEM;
    c->p = text;
    c->end = text + len;
    c->line = 1;
    while ((got = csv_next(c, AL_DETAIL, err)) == 1) {
        if (c->nfields == 0) {   /* a '#' line */
            int r1 = parse_footer(c->raw, c->raw_len, "#交易合计", "商家实收共", &foot_pay_n, &foot_pay);
            int r2 = parse_footer(c->raw, c->raw_len, "#退款合计", "商家实收退款共", &foot_refund_n,
                                  &foot_refund);
            if (r1 < 0 || r2 < 0) {
                buf_set_error(err, AL_DETAIL " line %zu: footer line not understood", c->rec_line);
                rc = PG_ERR_BAD_INPUT;
                break;
            }
            have_pay_foot |= r1;
            have_refund_foot |= r2;
            continue;
        }
        if (csv_is_blank_record(c))
            continue;
        if (!have_hdr) {
            colspec_t spec[] = {
                { AL_TRADE_NO, 1, &col.trade_no },
                { AL_OUT_TRADE_NO, 1, &col.out_trade_no },
                { AL_KIND, 1, &col.kind },
                { AL_FINISHED, 1, &col.finished },
                { AL_ORDER_AMOUNT, 1, &col.order_amount },
                { AL_RECEIVED, 1, &col.received },
                { AL_REFUND_NO, 1, &col.refund_no },
                { AL_FEE, 1, &col.fee },
                { NULL, 0, NULL },
            };
            hdr_n = c->nfields;
            memcpy(hdr, c->fields, hdr_n * sizeof hdr[0]);
            if ((rc = map_columns(AL_DETAIL, hdr, hdr_n, spec, c->rec_line, err)) != PG_OK)
                break;
            have_hdr = 1;
            continue;
        }
        if ((rc = al_row(a, c, &col, hdr_n, &rows, &pay_count, &refund_count, err)) != PG_OK)
            break;
    }
    if (got < 0)
        rc = got == -2 ? PG_ERR_NOMEM : PG_ERR_BAD_INPUT;
    free(c->unq);
    free(c);
    if (rc != PG_OK)
        return rc;
    if (!have_hdr) {
        buf_set_error(err, AL_DETAIL ": no header row");
        return PG_ERR_BAD_INPUT;
    }
    if (have_pay_foot && foot_pay_n != pay_count) {
        buf_set_error(err, AL_DETAIL ": footer counts %zu payments, the bill has %zu rows", foot_pay_n,
                pay_count);
        return PG_ERR_BAD_INPUT;
    }
    if (have_refund_foot && foot_refund_n != refund_count) {
        buf_set_error(err, AL_DETAIL ": footer counts %zu refunds, the bill has %zu rows", foot_refund_n,
                refund_count);
        return PG_ERR_BAD_INPUT;
    }
    /* Totals follow the row model (found by tests/fuzz): payments cannot
     * sum below zero, and the refund total is positive whatever sign the
     * footer wrote, as refund rows are. */
    if (have_pay_foot && foot_pay < 0) {
        buf_set_error(err, AL_DETAIL ": negative 商家实收共 in the #交易合计 footer");
        return PG_ERR_BAD_INPUT;
    }
    out->rows = rows.items;
    out->count = rows.count;
    if (have_pay_foot && have_refund_foot) {
        out->has_totals = true;
        out->total_amount_fen = foot_pay;
        out->total_refund_fen = magnitude(foot_refund);
    }
    return PG_OK;
}

/* The summary file's 合计 row: counts must match the detail; 订单金额 and
 * 服务费 become totals. */
static pg_err alipay_summary(const char *text, size_t len, bill_t *out, buf_t *err)
{
    csv_t *c;
    field_t hdr[BILL_MAX_FIELDS];
    size_t hdr_n = 0, n_pay = 0, n_refund = 0, pay_rows = 0, refund_rows = 0, i;
    int c_store, c_pay_n, c_refund_n, c_amount, c_fee, have_hdr = 0, have_total = 0, got;
    int64_t amount = 0, fee = 0;
    pg_err rc = PG_OK;
    char num[48];

    c = calloc(1, sizeof *c);
    if (c == NULL)
        return PG_ERR_NOMEM;
    c->p = text;
    c->end = text + len;
    c->line = 1;
    while ((got = csv_next(c, AL_SUMMARY, err)) == 1) {
        if (c->nfields == 0 || csv_is_blank_record(c))
            continue;
        if (!have_hdr) {
            colspec_t spec[] = {
                { AL_SUM_STORE, 1, &c_store },
                { AL_SUM_PAY_COUNT, 1, &c_pay_n },
                { AL_SUM_REFUND_COUNT, 1, &c_refund_n },
                { AL_ORDER_AMOUNT, 1, &c_amount },
                { AL_FEE, 1, &c_fee },
                { NULL, 0, NULL },
            };
            hdr_n = c->nfields;
            memcpy(hdr, c->fields, hdr_n * sizeof hdr[0]);
            if ((rc = map_columns(AL_SUMMARY, hdr, hdr_n, spec, c->rec_line, err)) != PG_OK)
                break;
            have_hdr = 1;
            continue;
        }
        if (c->nfields < hdr_n) {
            buf_set_error(err, AL_SUMMARY " line %zu: %zu fields where the header has %zu", c->rec_line,
                    c->nfields, hdr_n);
            rc = PG_ERR_BAD_INPUT;
            break;
        }
        if (!(c->fields[c_store].n == strlen("合计") &&
              memcmp(c->fields[c_store].s, "合计", c->fields[c_store].n) == 0))
            continue;   /* a per-store row: the 合计 row covers them */
        if (have_total) {
            buf_set_error(err, AL_SUMMARY " line %zu: a second 合计 row", c->rec_line);
            rc = PG_ERR_BAD_INPUT;
            break;
        }
        {
            const int idx[4] = { c_pay_n, c_refund_n, c_amount, c_fee };
            for (i = 0; i < 4; i++) {
                field_t f = c->fields[idx[i]];
                if (f.n >= sizeof num) {
                    rc = PG_ERR_BAD_INPUT;
                    break;
                }
                memcpy(num, f.s, f.n);
                num[f.n] = '\0';
                if ((i == 0 && parse_count(num, &n_pay) != PG_OK) ||
                    (i == 1 && parse_count(num, &n_refund) != PG_OK) ||
                    (i == 2 && parse_signed_yuan(num, BILL_TOTAL_MAX_FEN, &amount) != PG_OK) ||
                    (i == 3 && parse_signed_yuan(num, BILL_TOTAL_MAX_FEN, &fee) != PG_OK)) {
                    rc = PG_ERR_BAD_INPUT;
                    break;
                }
            }
            if (rc != PG_OK) {
                buf_set_error(err, AL_SUMMARY " line %zu: bad count or amount in the 合计 row", c->rec_line);
                break;
            }
        }
        have_total = 1;
    }
    if (got < 0)
        rc = got == -2 ? PG_ERR_NOMEM : PG_ERR_BAD_INPUT;
    free(c->unq);
    free(c);
    if (rc != PG_OK)
        return rc;
    if (!have_total) {
        buf_set_error(err, AL_SUMMARY ": no 合计 row");
        return PG_ERR_BAD_INPUT;
    }
    for (i = 0; i < out->count; i++) {
        if (out->rows[i].kind == BILL_PAYMENT)
            pay_rows++;
        else
            refund_rows++;
    }
    if (n_pay != pay_rows || n_refund != refund_rows) {
        buf_set_error(err, AL_SUMMARY ": counts %zu payments and %zu refunds, the detail has %zu and %zu",
                n_pay, n_refund, pay_rows, refund_rows);
        return PG_ERR_BAD_INPUT;
    }
    out->total_amount_fen = amount;
    out->total_fee_fen = -fee;
    out->has_fee_total = true;
    return PG_OK;
}

/* UTF-8 text: BOM dropped, checked, then parsed. */
static pg_err alipay_detail_utf8(arena_t *a, const char *text, size_t len, bill_t *out, buf_t *err)
{
    size_t bad;
    if (starts_with(text, len, BILL_UTF8_BOM)) {
        text += 3;
        len -= 3;
    }
    bad = utf8_bad_offset((const unsigned char *)text, len);
    if (bad != len) {
        buf_set_error(err, AL_DETAIL ": not UTF-8 text (byte %zu)", bad);
        return PG_ERR_BAD_INPUT;
    }
    return alipay_detail(a, text, len, out, err);
}

pg_err bill_parse_alipay_csv(arena_t *a, const char *csv_utf8, size_t len, bill_t *out, buf_t *err)
{
    pg_err rc;
    bill_clear(out);
    if (csv_utf8 == NULL) {
        buf_set_error(err, AL_DETAIL ": no input");
        return PG_ERR_BAD_INPUT;
    }
    if (len > BILL_MAX_UNCOMPRESSED) {
        buf_set_error(err, AL_DETAIL ": %zu bytes is over the %zu byte limit", len, BILL_MAX_UNCOMPRESSED);
        return PG_ERR_TOO_LARGE;
    }
    rc = alipay_detail_utf8(a, csv_utf8, len, out, err);
    if (rc != PG_OK)
        bill_clear(out);
    return rc;
}

pg_err bill_parse_alipay_csv_gbk(arena_t *a, const void *csv_gbk, size_t len, bill_t *out, buf_t *err)
{
    char *utf8;
    size_t ulen;
    pg_err rc;

    bill_clear(out);
    if (csv_gbk == NULL) {
        buf_set_error(err, AL_DETAIL ": no input");
        return PG_ERR_BAD_INPUT;
    }
    if ((rc = gbk_to_utf8(csv_gbk, len, &utf8, &ulen, AL_DETAIL, err)) != PG_OK)
        return rc;
    rc = alipay_detail_utf8(a, utf8, ulen, out, err);
    free(utf8);
    if (rc != PG_OK)
        bill_clear(out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Alipay zip                                                          */

/* Whether a raw entry name (GBK without the UTF-8 flag, as Alipay writes
 * them, or UTF-8) names the summary. */
static int name_is_summary(const char *raw, size_t n)
{
    static const char summary[] = "汇总";
    char *u = NULL;
    size_t ulen = 0;
    int hit = 0;

    if (utf8_bad_offset((const unsigned char *)raw, n) == n && find_in(raw, n, summary) != NULL)
        return 1;
    if (gbk_to_utf8(raw, n, &u, &ulen, "zip name", NULL) == PG_OK) {
        hit = find_in(u, ulen, summary) != NULL;
        free(u);
    }
    return hit;
}

static int name_is_csv(const char *raw, size_t n)
{
    return n > 4 && (memcmp(raw + n - 4, ".csv", 4) == 0 || memcmp(raw + n - 4, ".CSV", 4) == 0);
}

/* Reads entry i whole into a malloc'd buffer, bounded. */
static pg_err zip_read_entry(zip_t *za, zip_uint64_t i, char **out, size_t *out_len, buf_t *err)
{
    zip_stat_t st;
    zip_file_t *zf;
    char *data;
    size_t have = 0, size;
    zip_int64_t n;
    char extra;

    *out = NULL;
    *out_len = 0;
    zip_stat_init(&st);
    if (zip_stat_index(za, i, ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        buf_set_error(err, "alipay bill zip: cannot read entry %llu", (unsigned long long)i);
        return PG_ERR_BAD_INPUT;
    }
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
        buf_set_error(err, "alipay bill zip: entry %llu is encrypted", (unsigned long long)i);
        return PG_ERR_BAD_INPUT;
    }
    if (st.size > BILL_MAX_UNCOMPRESSED) {
        buf_set_error(err, "alipay bill zip: entry %llu unpacks to %llu bytes, over the %zu byte limit",
                (unsigned long long)i, (unsigned long long)st.size, BILL_MAX_UNCOMPRESSED);
        return PG_ERR_TOO_LARGE;
    }
    size = (size_t)st.size;
    zf = zip_fopen_index(za, i, 0);
    if (zf == NULL) {
        buf_set_error(err, "alipay bill zip: cannot open entry %llu: %s", (unsigned long long)i,
                zip_strerror(za));
        return PG_ERR_BAD_INPUT;
    }
    data = malloc(size + 1);
    if (data == NULL) {
        zip_fclose(zf);
        return PG_ERR_NOMEM;
    }
    while (have < size) {
        n = zip_fread(zf, data + have, size - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    /* the declared size may lie: one more byte must not exist */
    if (have == size) {
        n = zip_fread(zf, &extra, 1);
    } else {
        n = -1;
    }
    if (have == size && n > 0) {
        buf_set_error(err, "alipay bill zip: entry %llu unpacks to more than its declared %zu bytes",
                (unsigned long long)i, size);
        zip_fclose(zf);
        free(data);
        return PG_ERR_TOO_LARGE;
    }
    if (have != size || n != 0) {
        buf_set_error(err, "alipay bill zip: entry %llu is corrupt: %s", (unsigned long long)i,
                zip_file_strerror(zf));
        zip_fclose(zf);
        free(data);
        return PG_ERR_BAD_INPUT;
    }
    if (zip_fclose(zf) != 0) {
        buf_set_error(err, "alipay bill zip: entry %llu failed its check", (unsigned long long)i);
        free(data);
        return PG_ERR_BAD_INPUT;
    }
    data[size] = '\0';
    *out = data;
    *out_len = size;
    return PG_OK;
}

pg_err bill_parse_alipay_zip(arena_t *a, const void *zip, size_t len, bill_t *out, buf_t *err)
{
    zip_error_t ze;
    zip_source_t *src;
    zip_t *za;
    zip_int64_t n, i, detail = -1, summary = -1;
    char *raw = NULL, *utf8 = NULL;
    size_t raw_len, utf8_len;
    pg_err rc = PG_OK;

    bill_clear(out);
    if (zip == NULL || len < 4 || memcmp(zip, "PK\x03\x04", 4) != 0) {
        buf_set_error(err, "alipay bill: not a zip file");
        return PG_ERR_BAD_INPUT;
    }
    zip_error_init(&ze);
    src = zip_source_buffer_create(zip, len, 0, &ze);
    if (src == NULL) {
        buf_set_error(err, "alipay bill zip: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return PG_ERR_NOMEM;
    }
    za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (za == NULL) {
        buf_set_error(err, "alipay bill zip: not a readable zip (%s)", zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        return PG_ERR_BAD_INPUT;
    }
    zip_error_fini(&ze);
    n = zip_get_num_entries(za, 0);
    if (n > BILL_MAX_ZIP_ENTRIES) {
        buf_set_error(err, "alipay bill zip: %lld entries, more than %d", (long long)n, BILL_MAX_ZIP_ENTRIES);
        rc = PG_ERR_TOO_LARGE;
        goto done;
    }
    for (i = 0; i < n; i++) {
        const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        size_t nl;
        if (name == NULL)
            continue;
        nl = strlen(name);
        if (nl == 0 || name[nl - 1] == '/' || !name_is_csv(name, nl))
            continue;
        if (name_is_summary(name, nl)) {
            if (summary >= 0) {
                buf_set_error(err, "alipay bill zip: two summary files");
                rc = PG_ERR_BAD_INPUT;
                goto done;
            }
            summary = i;
        } else {
            if (detail >= 0) {
                buf_set_error(err, "alipay bill zip: two detail files");
                rc = PG_ERR_BAD_INPUT;
                goto done;
            }
            detail = i;
        }
    }
    if (detail < 0) {
        buf_set_error(err, "alipay bill zip: no detail CSV (a .csv whose name lacks 汇总)");
        rc = PG_ERR_BAD_INPUT;
        goto done;
    }
    if ((rc = zip_read_entry(za, (zip_uint64_t)detail, &raw, &raw_len, err)) != PG_OK)
        goto done;
    rc = gbk_to_utf8(raw, raw_len, &utf8, &utf8_len, AL_DETAIL, err);
    free(raw);
    raw = NULL;
    if (rc != PG_OK)
        goto done;
    rc = alipay_detail_utf8(a, utf8, utf8_len, out, err);
    free(utf8);
    utf8 = NULL;
    if (rc != PG_OK || summary < 0)
        goto done;
    if ((rc = zip_read_entry(za, (zip_uint64_t)summary, &raw, &raw_len, err)) != PG_OK)
        goto done;
    rc = gbk_to_utf8(raw, raw_len, &utf8, &utf8_len, AL_SUMMARY, err);
    free(raw);
    raw = NULL;
    if (rc != PG_OK)
        goto done;
    {
        const char *t = utf8;
        size_t tl = utf8_len, bad;
        if (starts_with(t, tl, BILL_UTF8_BOM)) {
            t += 3;
            tl -= 3;
        }
        bad = utf8_bad_offset((const unsigned char *)t, tl);
        if (bad != tl) {
            buf_set_error(err, AL_SUMMARY ": not text (byte %zu)", bad);
            rc = PG_ERR_BAD_INPUT;
        } else {
            rc = alipay_summary(t, tl, out, err);
        }
    }
done:
    free(utf8);
    zip_discard(za);
    if (rc != PG_OK)
        bill_clear(out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* gzip                                                                */

/* Inflates a gzip body (one or more members) into b (malloc-backed). */
static pg_err gunzip(const unsigned char *in, size_t len, buf_t *b, buf_t *err)
{
    z_stream zs;
    unsigned char chunk[65536];
    size_t fed = 0;
    pg_err rc = PG_OK;
    int zr;

    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        buf_set_error(err, "wechat bill: zlib init failed");
        return PG_ERR_INTERNAL;
    }
    for (;;) {
        if (zs.avail_in == 0 && fed < len) {
            size_t take = len - fed > 1u << 30 ? 1u << 30 : len - fed;
            zs.next_in = in + fed;
            zs.avail_in = (uInt)take;
            fed += take;
        }
        zs.next_out = chunk;
        zs.avail_out = sizeof chunk;
        zr = inflate(&zs, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            buf_set_error(err, "wechat bill: corrupt gzip (%s)", zs.msg != NULL ? zs.msg : "inflate error");
            rc = PG_ERR_BAD_INPUT;
            break;
        }
        if (sizeof chunk - zs.avail_out > 0) {
            size_t produced = sizeof chunk - zs.avail_out;
            if (b->len + produced > BILL_MAX_UNCOMPRESSED) {
                buf_set_error(err, "wechat bill: gzip unpacks to more than %zu bytes", BILL_MAX_UNCOMPRESSED);
                rc = PG_ERR_TOO_LARGE;
                break;
            }
            if ((rc = buf_append(b, chunk, produced)) != PG_OK)
                break;
        }
        if (zr == Z_STREAM_END) {
            size_t used = fed - zs.avail_in, rest = len - used;
            if (rest == 0)
                break;
            /* another member must follow, else it is trailing junk */
            if (rest < 2 || in[used] != 0x1f || in[used + 1] != 0x8b) {
                buf_set_error(err, "wechat bill: %zu bytes of junk after the gzip data", rest);
                rc = PG_ERR_BAD_INPUT;
                break;
            }
            if (inflateReset(&zs) != Z_OK) {
                rc = PG_ERR_INTERNAL;
                break;
            }
            continue;
        }
        if (zr == Z_BUF_ERROR && zs.avail_in == 0 && fed == len) {
            buf_set_error(err, "wechat bill: truncated gzip");
            rc = PG_ERR_BAD_INPUT;
            break;
        }
        if (zr == Z_BUF_ERROR && zs.avail_out == sizeof chunk && zs.avail_in != 0) {
            buf_set_error(err, "wechat bill: gzip makes no progress");
            rc = PG_ERR_BAD_INPUT;
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

/* ------------------------------------------------------------------ */
/* WeChat text                                                         */

#define WX "wechat bill"

static const char *const WX_TIME[] = { "交易时间", NULL };
static const char *const WX_TRADE_NO[] = { "微信订单号", NULL };
static const char *const WX_OUT_TRADE_NO[] = { "商户订单号", NULL };
static const char *const WX_STATE[] = { "交易状态", NULL };
static const char *const WX_AMOUNT[] = { "应结订单金额", "总金额", NULL };
static const char *const WX_FEE[] = { "手续费", NULL };
static const char *const WX_REFUND_AMOUNT[] = { "退款金额", NULL };
static const char *const WX_OUT_REFUND_NO[] = { "商户退款单号", NULL };
static const char *const WX_REFUND_ID[] = { "微信退款单号", NULL };
static const char *const WX_REFUND_STATUS[] = { "退款状态", NULL };
static const char *const WX_REFUND_TIME[] = { "退款成功时间", NULL };
static const char *const WX_SUM_COUNT[] = { "总交易单数", NULL };
static const char *const WX_SUM_AMOUNT[] = { "应结订单总金额", "总交易额", NULL };
static const char *const WX_SUM_REFUND[] = { "退款总金额", "总退款金额", NULL };
static const char *const WX_SUM_FEE[] = { "手续费总金额", NULL };

typedef struct wx_cols {
    int time, trade_no, out_trade_no, state, amount, fee;
    int refund_amount, out_refund_no, refund_id, refund_status, refund_time;
} wx_cols_t;

/* A plain comma-separated header line. */
static pg_err split_plain(const char *s, size_t n, field_t *f, size_t *nf, size_t line, buf_t *err)
{
    const char *end = s + n, *p = s;
    *nf = 0;
    for (;;) {
        const char *q = p;
        field_t x;
        while (q < end && *q != ',')
            q++;
        if (*nf == BILL_MAX_FIELDS) {
            buf_set_error(err, WX " line %zu: more than %d columns", line, BILL_MAX_FIELDS);
            return PG_ERR_BAD_INPUT;
        }
        x.s = p;
        x.n = (size_t)(q - p);
        trim(&x.s, &x.n);
        f[(*nf)++] = x;
        if (q >= end)
            break;
        p = q + 1;
    }
    return PG_OK;
}

/* A backticked row: "`a,`b,`c". Fields are split at ",`" so that a comma
 * inside a value stays inside it; a field that lost its backtick therefore
 * merges into its neighbour and the count no longer matches the header. */
static pg_err split_ticked(const char *s, size_t n, field_t *f, size_t *nf, size_t line, buf_t *err)
{
    const char *end = s + n, *p;
    *nf = 0;
    if (n == 0 || s[0] != '`') {
        buf_set_error(err, WX " line %zu: a data field does not start with a backtick", line);
        return PG_ERR_BAD_INPUT;
    }
    p = s + 1;
    for (;;) {
        const char *q = p;
        field_t x;
        while (q < end && !(*q == ',' && q + 1 < end && q[1] == '`'))
            q++;
        if (*nf == BILL_MAX_FIELDS) {
            buf_set_error(err, WX " line %zu: more than %d fields", line, BILL_MAX_FIELDS);
            return PG_ERR_BAD_INPUT;
        }
        x.s = p;
        x.n = (size_t)(q - p);
        trim(&x.s, &x.n);
        f[(*nf)++] = x;
        if (q >= end)
            break;
        p = q + 2;
    }
    return PG_OK;
}

static int field_is(field_t f, const char *want)
{
    return f.n == strlen(want) && memcmp(f.s, want, f.n) == 0;
}

typedef struct wx_state {
    arena_t *a;
    rows_t rows;
    field_t hdr[BILL_MAX_FIELDS], row[BILL_MAX_FIELDS];
    size_t hdr_n, row_n;
    wx_cols_t col;
} wx_state_t;

static pg_err wx_amount(arena_t *a, field_t f, const char *name, size_t line, int fee, int64_t max,
                        int64_t *out, buf_t *err)
{
    char *s = fdup(a, f);
    pg_err rc;
    if (s == NULL)
        return PG_ERR_NOMEM;
    rc = fee ? parse_fee_yuan(s, max, out) : parse_signed_yuan(s, max, out);
    if (rc != PG_OK) {
        buf_set_error(err, WX " line %zu: bad %s \"%.40s\"", line, name, s);
        return PG_ERR_BAD_INPUT;
    }
    return PG_OK;
}

static const char *opt_dup(arena_t *a, const field_t *row, int idx, int *nomem)
{
    const char *s;
    if (idx < 0 || row[idx].n == 0)
        return NULL;
    s = fdup(a, row[idx]);
    if (s == NULL)
        *nomem = 1;
    return s;
}

static pg_err wx_row(wx_state_t *w, size_t line, buf_t *err)
{
    const field_t *f = w->row;
    const wx_cols_t *c = &w->col;
    bill_row_t *r;
    int64_t v;
    int nomem = 0;
    pg_err rc;

    if ((r = rows_add(&w->rows)) == NULL) {
        buf_set_error(err, WX ": more than %zu rows", (size_t)BILL_MAX_ROWS);
        return w->rows.count >= BILL_MAX_ROWS ? PG_ERR_TOO_LARGE : PG_ERR_NOMEM;
    }
    r->line = line;
    if (field_is(f[c->state], "SUCCESS")) {
        r->kind = BILL_PAYMENT;
    } else if (field_is(f[c->state], "REFUND")) {
        r->kind = BILL_REFUND;
        if (c->refund_amount < 0 || c->out_refund_no < 0 || c->refund_id < 0) {
            buf_set_error(err, WX " line %zu: a REFUND row, but the header lacks 退款金额/商户退款单号/微信退款单号",
                    line);
            return PG_ERR_BAD_INPUT;
        }
    } else {
        buf_set_error(err, WX " line %zu: 交易状态 \"%.*s\" is neither SUCCESS nor REFUND", line,
                (int)(f[c->state].n > 64 ? 64 : f[c->state].n), f[c->state].s);
        return PG_ERR_BAD_INPUT;
    }
    if (f[c->trade_no].n == 0) {
        buf_set_error(err, WX " line %zu: empty 微信订单号", line);
        return PG_ERR_BAD_INPUT;
    }
    r->status = fdup(w->a, f[c->state]);
    r->provider_trade_no = fdup(w->a, f[c->trade_no]);
    r->out_trade_no = fdup(w->a, f[c->out_trade_no]);
    r->finished_at = fdup(w->a, f[c->time]);
    if (r->status == NULL || r->provider_trade_no == NULL || r->out_trade_no == NULL ||
        r->finished_at == NULL)
        return PG_ERR_NOMEM;
    if ((rc = wx_amount(w->a, f[c->fee], "手续费", line, 1, MONEY_MAX_FEN, &r->fee_fen, err)) != PG_OK)
        return rc;
    if (r->kind == BILL_PAYMENT) {
        if ((rc = wx_amount(w->a, f[c->amount], "应结订单金额", line, 0, MONEY_MAX_FEN, &v, err)) != PG_OK)
            return rc;
        if (v < 0) {
            buf_set_error(err, WX " line %zu: negative 应结订单金额 on a SUCCESS row", line);
            return PG_ERR_BAD_INPUT;
        }
        r->amount_fen = v;
        return PG_OK;
    }
    if ((rc = wx_amount(w->a, f[c->refund_amount], "退款金额", line, 0, MONEY_MAX_FEN, &v, err)) != PG_OK)
        return rc;
    r->amount_fen = magnitude(v);
    r->out_refund_no = opt_dup(w->a, f, c->out_refund_no, &nomem);
    r->provider_refund_no = opt_dup(w->a, f, c->refund_id, &nomem);
    r->refund_status = opt_dup(w->a, f, c->refund_status, &nomem);
    if (c->refund_time >= 0 && f[c->refund_time].n > 0)
        r->finished_at = opt_dup(w->a, f, c->refund_time, &nomem);
    return nomem ? PG_ERR_NOMEM : PG_OK;
}

static pg_err wx_summary(wx_state_t *w, const char *hs, size_t hn, size_t hline, const char *rs,
                         size_t rn, size_t rline, bill_t *out, buf_t *err)
{
    int c_count, c_amount, c_refund, c_fee;
    colspec_t spec[] = {
        { WX_SUM_COUNT, 1, &c_count },
        { WX_SUM_AMOUNT, 1, &c_amount },
        { WX_SUM_REFUND, 1, &c_refund },
        { WX_SUM_FEE, 1, &c_fee },
        { NULL, 0, NULL },
    };
    size_t count;
    char num[16];
    pg_err rc;

    if ((rc = split_plain(hs, hn, w->hdr, &w->hdr_n, hline, err)) != PG_OK ||
        (rc = map_columns(WX " summary", w->hdr, w->hdr_n, spec, hline, err)) != PG_OK)
        return rc;
    if ((rc = split_ticked(rs, rn, w->row, &w->row_n, rline, err)) != PG_OK)
        return rc;
    if (w->row_n != w->hdr_n) {
        buf_set_error(err, WX " line %zu: summary row has %zu fields, its header %zu", rline, w->row_n, w->hdr_n);
        return PG_ERR_BAD_INPUT;
    }
    if (w->row[c_count].n >= sizeof num) {
        buf_set_error(err, WX " line %zu: bad 总交易单数", rline);
        return PG_ERR_BAD_INPUT;
    }
    memcpy(num, w->row[c_count].s, w->row[c_count].n);
    num[w->row[c_count].n] = '\0';
    if (parse_count(num, &count) != PG_OK) {
        buf_set_error(err, WX " line %zu: bad 总交易单数", rline);
        return PG_ERR_BAD_INPUT;
    }
    if (count != w->rows.count) {
        buf_set_error(err, WX ": summary counts %zu rows, the bill has %zu", count, w->rows.count);
        return PG_ERR_BAD_INPUT;
    }
    if ((rc = wx_amount(w->a, w->row[c_amount], "应结订单总金额", rline, 0, BILL_TOTAL_MAX_FEN,
                        &out->total_amount_fen, err)) != PG_OK ||
        (rc = wx_amount(w->a, w->row[c_refund], "退款总金额", rline, 0, BILL_TOTAL_MAX_FEN,
                        &out->total_refund_fen, err)) != PG_OK ||
        (rc = wx_amount(w->a, w->row[c_fee], "手续费总金额", rline, 1, BILL_TOTAL_MAX_FEN,
                        &out->total_fee_fen, err)) != PG_OK)
        return rc;
    if (out->total_amount_fen < 0) {
        /* a sum of rows that may not be negative (found by tests/fuzz) */
        buf_set_error(err, WX " line %zu: negative 应结订单总金额", rline);
        return PG_ERR_BAD_INPUT;
    }
    out->total_refund_fen = magnitude(out->total_refund_fen);
    out->has_totals = true;
    out->has_fee_total = true;
    return PG_OK;
}

static pg_err wechat_text(arena_t *a, const char *text, size_t len, bill_t *out, buf_t *err)
{
    wx_state_t *w;
    const char *p, *end, *s;
    size_t n, line = 0, bad, i;
    int have_hdr = 0;
    pg_err rc = PG_OK;

    if (starts_with(text, len, BILL_UTF8_BOM)) {
        text += 3;
        len -= 3;
    }
    bad = utf8_bad_offset((const unsigned char *)text, len);
    if (bad != len) {
        buf_set_error(err, WX ": not UTF-8 text (byte %zu)", bad);
        return PG_ERR_BAD_INPUT;
    }
    for (i = 0; i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'); i++)
        ;
    if (starts_with(text + i, len - i, "<xml")) {
        /* text is not NUL-terminated: quote at most what is there */
        buf_set_error(err, WX ": an XML reply, not a bill: %.*s", (int)(len - i < 200 ? len - i : 200),
                text + i);
        return PG_ERR_BAD_INPUT;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return PG_ERR_NOMEM;
    w->a = a;
    w->rows.a = a;
    p = text;
    end = text + len;
    while (next_line(&p, end, &s, &n)) {
        line++;
        trim(&s, &n);
        if (n == 0)
            continue;
        if (!have_hdr) {
            colspec_t spec[] = {
                { WX_TIME, 1, &w->col.time },
                { WX_TRADE_NO, 1, &w->col.trade_no },
                { WX_OUT_TRADE_NO, 1, &w->col.out_trade_no },
                { WX_STATE, 1, &w->col.state },
                { WX_AMOUNT, 1, &w->col.amount },
                { WX_FEE, 1, &w->col.fee },
                { WX_REFUND_AMOUNT, 0, &w->col.refund_amount },
                { WX_OUT_REFUND_NO, 0, &w->col.out_refund_no },
                { WX_REFUND_ID, 0, &w->col.refund_id },
                { WX_REFUND_STATUS, 0, &w->col.refund_status },
                { WX_REFUND_TIME, 0, &w->col.refund_time },
                { NULL, 0, NULL },
            };
            if (s[0] == '`') {
                buf_set_error(err, WX " line %zu: a data row before the header", line);
                rc = PG_ERR_BAD_INPUT;
                break;
            }
            if ((rc = split_plain(s, n, w->hdr, &w->hdr_n, line, err)) != PG_OK ||
                (rc = map_columns(WX, w->hdr, w->hdr_n, spec, line, err)) != PG_OK)
                break;
            have_hdr = 1;
            continue;
        }
        if (s[0] != '`') {
            /* the summary header, then its one row, then nothing */
            const char *rs = NULL, *hs = s;
            size_t rn = 0, hn = n, hline = line, rline = 0;
            while (next_line(&p, end, &rs, &rn)) {
                line++;
                trim(&rs, &rn);
                if (rn != 0)
                    break;
            }
            if (rs == NULL || rn == 0) {
                buf_set_error(err, WX " line %zu: summary header without its row (truncated?)", hline);
                rc = PG_ERR_BAD_INPUT;
                break;
            }
            rline = line;
            if ((rc = wx_summary(w, hs, hn, hline, rs, rn, rline, out, err)) != PG_OK)
                break;
            while (next_line(&p, end, &s, &n)) {
                line++;
                trim(&s, &n);
                if (n != 0) {
                    buf_set_error(err, WX " line %zu: text after the summary", line);
                    rc = PG_ERR_BAD_INPUT;
                    break;
                }
            }
            break;
        }
        if ((rc = split_ticked(s, n, w->row, &w->row_n, line, err)) != PG_OK)
            break;
        if (w->row_n != w->hdr_n) {
            buf_set_error(err, WX " line %zu: %zu fields where the header has %zu (a field without its backtick?)",
                    line, w->row_n, w->hdr_n);
            rc = PG_ERR_BAD_INPUT;
            break;
        }
        if ((rc = wx_row(w, line, err)) != PG_OK)
            break;
    }
    if (rc == PG_OK && !have_hdr) {
        buf_set_error(err, WX ": empty");
        rc = PG_ERR_BAD_INPUT;
    }
    if (rc == PG_OK) {
        out->rows = w->rows.items;
        out->count = w->rows.count;
    }
    free(w);
    return rc;
}

pg_err bill_wechat_plain(const void *data, size_t len, buf_t *out, buf_t *err)
{
    const unsigned char *t = data;
    pg_err rc;

    if (data == NULL)
        return PG_ERR_BAD_INPUT;
    if (len >= 2 && t[0] == 0x1f && t[1] == 0x8b) {
        buf_t plain;
        buf_init(&plain, NULL);
        rc = gunzip(t, len, &plain, err);
        if (rc == PG_OK && plain.failed)
            rc = PG_ERR_NOMEM;
        if (rc == PG_OK)
            rc = buf_append(out, plain.data, plain.len);
        buf_free(&plain);
        return rc;
    }
    if (len > BILL_MAX_UNCOMPRESSED) {
        buf_set_error(err, WX ": %zu bytes is over the %zu byte limit", len, BILL_MAX_UNCOMPRESSED);
        return PG_ERR_TOO_LARGE;
    }
    return buf_append(out, data, len);
}

pg_err bill_parse_wechat(arena_t *a, const void *text, size_t len, bill_t *out, buf_t *err)
{
    const unsigned char *t = text;
    pg_err rc;

    bill_clear(out);
    if (text == NULL) {
        buf_set_error(err, WX ": no input");
        return PG_ERR_BAD_INPUT;
    }
    if (len >= 2 && t[0] == 0x1f && t[1] == 0x8b) {
        buf_t plain;
        buf_init(&plain, NULL);
        rc = gunzip(t, len, &plain, err);
        if (rc == PG_OK && plain.failed)
            rc = PG_ERR_NOMEM;
        if (rc == PG_OK)
            rc = wechat_text(a, plain.data, plain.len, out, err);
        buf_free(&plain);
    } else if (len > BILL_MAX_UNCOMPRESSED) {
        buf_set_error(err, WX ": %zu bytes is over the %zu byte limit", len, BILL_MAX_UNCOMPRESSED);
        rc = PG_ERR_TOO_LARGE;
    } else {
        rc = wechat_text(a, text, len, out, err);
    }
    if (rc != PG_OK)
        bill_clear(out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* dates                                                               */

pg_err bill_normalize_date(const char *ymd, bool dashes, char out[11])
{
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    char d[8];
    size_t n, i, k = 0;
    int y, m, day, leap;

    out[0] = '\0';
    if (ymd == NULL)
        return PG_ERR_BAD_INPUT;
    n = strlen(ymd);
    if (n == 10) {
        if (ymd[4] != '-' || ymd[7] != '-')
            return PG_ERR_BAD_INPUT;
    } else if (n != 8) {
        return PG_ERR_BAD_INPUT;
    }
    for (i = 0; i < n; i++) {
        if (n == 10 && (i == 4 || i == 7))
            continue;
        if (ymd[i] < '0' || ymd[i] > '9')
            return PG_ERR_BAD_INPUT;
        d[k++] = ymd[i];
    }
    y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
    m = (d[4] - '0') * 10 + (d[5] - '0');
    day = (d[6] - '0') * 10 + (d[7] - '0');
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 2000 || m < 1 || m > 12 || day < 1 ||
        day > mdays[m - 1] + (m == 2 && leap ? 1 : 0))
        return PG_ERR_BAD_INPUT;
    if (dashes)
        snprintf(out, 11, "%.4s-%.2s-%.2s", d, d + 4, d + 6);
    else
        snprintf(out, 11, "%.8s", d);
    return PG_OK;
}

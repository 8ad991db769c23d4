/* fuzz_bill: what every accepted bill must look like, shared by the bill
 * parser targets (see include/bill.h for the row model). */
#ifndef FUZZ_BILL_H
#define FUZZ_BILL_H
#include "bill.h"
#include "fuzz_common.h"
#include "money.h"

/* Strict UTF-8, as the parsers promise for every string they hand out. */
static inline int fuzz_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned char c = *p;
        size_t need, i;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (i = 1; i <= need; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        p += need + 1;
    }
    return 1;
}

static inline void fuzz_check_opt_str(const char *s)
{
    if (s != NULL)
        FUZZ_ASSERT(fuzz_utf8_ok(s));
}

/* rc and out from one bill_parse_* call. amount_total_nonneg: the payment
 * total comes from a sum of payments (WeChat summary, Alipay detail footer),
 * not from the Alipay zip's summary 订单金额, whose sign real bills do not
 * pin down. */
static inline void fuzz_check_bill(pg_err rc, const bill_t *b, int amount_total_nonneg)
{
    size_t i;

    if (rc != PG_OK)
        return;
    FUZZ_ASSERT(b->count <= BILL_MAX_ROWS);
    FUZZ_ASSERT(b->count == 0 || b->rows != NULL);
    for (i = 0; i < b->count; i++) {
        const bill_row_t *r = &b->rows[i];
        FUZZ_ASSERT(r->kind == BILL_PAYMENT || r->kind == BILL_REFUND);
        FUZZ_ASSERT(r->provider_trade_no != NULL && r->provider_trade_no[0] != '\0');
        FUZZ_ASSERT(r->out_trade_no != NULL);
        FUZZ_ASSERT(r->amount_fen >= 0 && r->amount_fen <= MONEY_MAX_FEN);
        FUZZ_ASSERT(r->fee_fen >= -MONEY_MAX_FEN && r->fee_fen <= MONEY_MAX_FEN);
        FUZZ_ASSERT(r->line >= 1);
        if (r->kind == BILL_PAYMENT) {
            FUZZ_ASSERT(r->out_refund_no == NULL && r->provider_refund_no == NULL);
        }
        fuzz_check_opt_str(r->provider_trade_no);
        fuzz_check_opt_str(r->out_trade_no);
        fuzz_check_opt_str(r->out_refund_no);
        fuzz_check_opt_str(r->provider_refund_no);
        fuzz_check_opt_str(r->status);
        fuzz_check_opt_str(r->finished_at);
        fuzz_check_opt_str(r->refund_status);
        if (r->out_refund_no != NULL)
            FUZZ_ASSERT(r->out_refund_no[0] != '\0');
        if (r->provider_refund_no != NULL)
            FUZZ_ASSERT(r->provider_refund_no[0] != '\0');
    }
    if (b->has_totals) {
        if (amount_total_nonneg)
            FUZZ_ASSERT(b->total_amount_fen >= 0);
        FUZZ_ASSERT(b->total_refund_fen >= 0);
    }
}

#endif

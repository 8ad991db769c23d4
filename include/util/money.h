/* money: amounts are int64 fen everywhere. Strict parsing of provider
 * formats; no floating point. */
#ifndef MONEY_H
#define MONEY_H
#include <stdbool.h>
#include <stdint.h>
#include "pg_err.h"

#define MONEY_MAX_FEN ((int64_t)10000000000)   /* 100,000,000.00 yuan */
#define MONEY_YUAN_BUFSZ 32

/* "99.00" -> 9900. Exactly: one or more digits without a leading zero
 * (except a single "0"), '.', exactly two digits. Rejects "12.3", "12.345",
 * "1e3", "-1", "+1", " 1", "1 ", "", "01.00", ".50", values > max_fen.
 * Zero ("0.00") is accepted; callers decide whether zero makes sense. */
pg_err money_parse_yuan(const char *s, int64_t max_fen, int64_t *out_fen);
/* "9900" -> 9900 (WeChat): digits only, no leading zero unless "0", <= max_fen. */
pg_err money_parse_fen(const char *s, int64_t max_fen, int64_t *out_fen);
/* 9900 -> "99.00"; negative values get a leading '-'. */
void   money_format_yuan(int64_t fen, char out[MONEY_YUAN_BUFSZ]);
/* True for currencies without a minor unit (jpy, krw, ...: Stripe's list):
 * amounts in them are whole units. currency is a lowercase ISO code. */
bool   money_zero_decimal(const char *currency);
/* round_half_up(amount_fen * rate_bp / 10000), amount_fen >= 0, rate_bp >= 0. */
int64_t money_fee_fen(int64_t amount_fen, int64_t rate_bp);

#endif

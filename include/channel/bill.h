/* bill: the providers' daily bills, downloaded and parsed into rows. Bytes in,
 * facts out: no database and no policy about matching (reconciliation does
 * that). bill.c is the only user of libzip, zlib and iconv; bill_fetch.c
 * downloads through the alipay/wechat adapters' public functions and httpc.
 *
 * Row model (the sign conventions are the parser's, not the bill's):
 *   amount_fen  payment: Alipay 订单金额, WeChat 应结订单金额;
 *               refund:  the refunded amount, always POSITIVE (Alipay
 *               -商家实收, WeChat 退款金额), whatever sign the bill wrote.
 *   fee_fen     the provider's service fee as a cost to the merchant:
 *               POSITIVE when charged (payments), NEGATIVE when returned
 *               (refunds). Alipay: -服务费; WeChat: 手续费 as written.
 *
 * Alipay (trade bill, a zip of GBK CSV files): the detail file is the one
 * whose name does not contain 汇总 (names are decoded as GBK, or UTF-8 when
 * the zip says so); 业务类型 交易 -> payment, 退款 -> refund (anything else is
 * refused). 订单金额 on refund rows is ignored: the sandbox writes the
 * trade's total there and real bills have been seen writing the negated
 * refund, so the refunded amount comes from 商家实收. Totals: the detail
 * footer when present (#交易合计 / #退款合计: counts checked against the
 * rows, 商家实收共 -> total_amount_fen, -商家实收退款共 -> total_refund_fen)
 * and, in the zip, the summary file's 合计 row when the zip has one (counts
 * checked, 订单金额 -> total_amount_fen, -服务费 -> total_fee_fen). A detail
 * CSV alone has no fee total (has_fee_total false).
 *
 * WeChat (downloadbill text, UTF-8, maybe gzip): header row, data rows whose
 * every field starts with a backtick, summary header (总交易单数 ...) and one
 * summary row. Fields are split at ",`" so a comma inside a value (商户数据包
 * JSON) does not shift columns; a row whose field count differs from the
 * header's is refused. 交易状态 SUCCESS -> payment; REFUND -> ONE refund row
 * (退款金额, 商户退款单号, 微信退款单号, 退款状态) and nothing else: a REFUND row
 * records the refund event only (应结订单金额 and 订单金额 are 0.00 there; the
 * payment was its own SUCCESS row on the day it was paid), so it never
 * counts as a payment too. Other states (REVOKED ...) are refused.
 * finished_at = 交易时间, or for refunds 退款成功时间 when the bill has that
 * column (bill_type REFUND). 手续费 has five decimals: rounded half away from
 * zero to whole fen (WeChat charges whole fen; the digits are zeros).
 * Totals: 应结订单总金额, 退款总金额, 手续费总金额; 总交易单数 must equal the
 * row count; a summary header without its row is refused (truncated).
 *
 * has_totals false means the text carried no footer/summary at all: the
 * providers always write one, so a caller reconciling a downloaded bill
 * should treat that as an incomplete bill (a file cut at a line end).
 *
 * Every parser: columns by header name (a missing one is refused), fields
 * trimmed of spaces and tabs, amounts strictly "digits.two digits" with an
 * optional leading '-', text must be valid UTF-8 without NUL bytes,
 * malformed input -> PG_ERR_BAD_INPUT with the reason (and row) in err;
 * more than BILL_MAX_UNCOMPRESSED bytes after decompression, more than
 * BILL_MAX_ZIP_ENTRIES entries or BILL_MAX_ROWS rows -> PG_ERR_TOO_LARGE.
 * Every string points into the arena. */
#ifndef BILL_H
#define BILL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "alipay.h"
#include "arena.h"
#include "buf.h"
#include "pg_err.h"
#include "wechat.h"
#include "wechat_v3.h"

#define BILL_MAX_UNCOMPRESSED ((size_t)64 * 1024 * 1024)
#define BILL_MAX_ZIP_ENTRIES 16
#define BILL_MAX_ROWS ((size_t)1000000)

typedef enum { BILL_PAYMENT, BILL_REFUND } bill_kind_t;

typedef struct bill_row {
    bill_kind_t kind;
    const char *provider_trade_no;   /* 支付宝交易号 / 微信订单号 (never NULL or "") */
    const char *out_trade_no;        /* 商户订单号: our payment_no ("" when the bill has none) */
    const char *out_refund_no;       /* refunds: 退款批次号/请求号 / 商户退款单号; NULL for payments or when empty */
    const char *provider_refund_no;  /* WeChat refunds: 微信退款单号; NULL otherwise or when empty */
    int64_t amount_fen;              /* see above: POSITIVE */
    int64_t fee_fen;                 /* see above: + charged, - returned */
    const char *status;              /* WeChat 交易状态 (SUCCESS/REFUND) or Alipay 业务类型 (交易/退款) */
    const char *finished_at;         /* as in the bill, e.g. "2026-01-02 10:00:00" */
    const char *refund_status;       /* WeChat refunds: 退款状态 (SUCCESS, ...) when the column exists; else NULL */
    size_t line;                     /* 1-based line of the row in the (decompressed, UTF-8) text */
} bill_row_t;

typedef struct bill {
    bill_row_t *rows;
    size_t count;
    int64_t total_amount_fen;        /* payments' amount */
    int64_t total_refund_fen;        /* refunds' amount, POSITIVE */
    int64_t total_fee_fen;           /* signed like fee_fen: charged minus returned */
    bool has_totals;                 /* amount and refund totals read from the bill */
    bool has_fee_total;              /* total_fee_fen read from the bill */
} bill_t;

/* The zip Alipay serves: finds the detail CSV (the entry whose name does not
 * contain 汇总) and the optional summary, GBK -> UTF-8, parses both. */
pg_err bill_parse_alipay_zip(arena_t *a, const void *zip, size_t len, bill_t *out, buf_t *err);
/* The detail CSV already in UTF-8 (tests, --bill FILE of an extracted CSV). */
pg_err bill_parse_alipay_csv(arena_t *a, const char *csv_utf8, size_t len, bill_t *out, buf_t *err);
/* A detail CSV file as Alipay wrote it (GBK), e.g. extracted from the zip. */
pg_err bill_parse_alipay_csv_gbk(arena_t *a, const void *csv_gbk, size_t len, bill_t *out, buf_t *err);
/* WeChat downloadbill body (bill_type ALL, SUCCESS or REFUND), plain or
 * gzip (detected by its magic bytes). */
pg_err bill_parse_wechat(arena_t *a, const void *text, size_t len, bill_t *out, buf_t *err);
/* A WeChat bill body as text: gunzipped when it starts with the gzip magic
 * (as bill_parse_wechat does), else as it is; appended to out. Corrupt gzip
 * -> PG_ERR_BAD_INPUT, over BILL_MAX_UNCOMPRESSED -> PG_ERR_TOO_LARGE. */
pg_err bill_wechat_plain(const void *data, size_t len, buf_t *out, buf_t *err);

/* "yyyy-MM-dd" or "yyyyMMdd" (a real calendar date) -> "yyyy-MM-dd" (dash)
 * or "yyyyMMdd". PG_ERR_BAD_INPUT otherwise. out holds 11 bytes. */
pg_err bill_normalize_date(const char *ymd, bool dashes, char out[11]);

/* alipay.data.dataservice.bill.downloadurl.query (bill_type trade,
 * bill_date yyyy-MM-dd; ymd may be either form), then GET the
 * bill_download_url; the zip bytes are appended to zip_out (the caller
 * initialises it). A signed isp.bill_not_exist -> PG_ERR_NOT_FOUND; other failures as
 * alipay_call; a download that is not HTTP 200 or not a zip ->
 * PG_ERR_UPSTREAM; more than BILL_MAX_DOWNLOAD bytes -> PG_ERR_TOO_LARGE. */
pg_err bill_fetch_alipay(arena_t *a, const alipay_client_t *c, const char *ymd, buf_t *zip_out,
                         buf_t *err);

/* POST /pay/downloadbill (appid, mch_id, nonce_str, sign[, sign_type],
 * bill_date yyyyMMdd, bill_type ALL, tar_type GZIP). An XML reply is an
 * error: "No Bill Exist" (or error_code 20002) -> PG_ERR_NOT_FOUND, a bill
 * still being made ("Bill Creating") -> PG_ERR_TIMEOUT (ask later), others
 * -> PG_ERR_UPSTREAM with return_msg in err. Otherwise the raw body (maybe
 * gzip; not signed: WeChat does not sign bills) is appended to text_out. */
pg_err bill_fetch_wechat(arena_t *a, const wechat_client_t *c, const char *ymd, buf_t *text_out,
                         buf_t *err);

/* WeChat Pay API v3: GET /v3/bill/tradebill?bill_date=yyyy-MM-dd
 * &bill_type=ALL&tar_type=GZIP through wxv3_call (the reply signed, checked
 * at now) -> {hash_type SHA1, hash_value, download_url}; the download_url
 * must be on the client's gateway (the signed Authorization goes nowhere
 * else); it is fetched with a signed GET (WeChat does not sign the bill
 * itself), gunzipped when gzip, and the text's SHA1 must equal hash_value
 * (PG_ERR_BAD_SIGNATURE otherwise: a bill changed or cut on the way). The
 * text is appended to text_out: the v2 bill's format (bill_parse_wechat).
 * 400 NO_STATEMENT_EXIST -> PG_ERR_NOT_FOUND, STATEMENT_CREATING ->
 * PG_ERR_TIMEOUT (ask later), other failures as wxv3_call. */
pg_err bill_fetch_wechat_v3(arena_t *a, const wxv3_client_t *c, const char *ymd, time_t now,
                            buf_t *text_out, buf_t *err);

#define BILL_MAX_DOWNLOAD ((size_t)64 * 1024 * 1024)

#endif

/* payout: pays settlement batches to the creators' own accounts (SPEC
 * §12.3) by Alipay transfer (certificate mode). A payout is never sent
 * twice: it is sent only under an atomic claim that also marks it "sent";
 * a payout marked sent is asked about (transfer query) before anything is
 * sent again, and only a signed "no such transfer" allows that; the batch
 * number is the transfer's idempotency key (out_biz_no) besides. */
#ifndef PAYOUT_H
#define PAYOUT_H
#include "app.h"
#include "notify.h"
#include "wechat_v3_transfer.h"

typedef struct payout_run {
    unsigned created;        /* new payouts for batches */
    unsigned waiting;        /* batches whose creator has no payout account */
    unsigned paid;
    unsigned failed;
    unsigned pending;        /* left PENDING: processing, unknown outcome, balance too low */
    unsigned skipped;        /* claimed by another run */
    unsigned unsendable;     /* open payouts of a channel this configuration cannot send
                              * (made before [payouts] channel changed): left as they are */
    int64_t paid_fen;
} payout_run_t;

/* Pays every payout due (settled on ymd, or any day when ymd is NULL).
 * PG_ERR_CONFIG when payouts are not enabled or cannot be sent. */
pg_err payout_run(pg_app_t *app, arena_t *a, const char *ymd, payout_run_t *out, buf_t *msg);

/* FAILED -> PENDING for the batch (after the operator fixed the account);
 * PG_ERR_NOT_FOUND when it is not a FAILED payout. */
pg_err payout_retry(pg_app_t *app, const char *payout_no);

/* A WeChat transfer's final state (MCHTRANSFER.BILL.FINISHED, verified and
 * decrypted by the caller; ev carries its id and raw body for the
 * notifications table). One transaction locks the payout whose out_bill_no
 * it is, checks the amount, records PAID (ledger settled -> paidout,
 * payout.paid) or FAILED (payout.failed) from PENDING only, and stores the
 * notification with its outcome; a repeat is a "duplicate". res->ack only
 * after commit. PG_ERR_NOT_FOUND (no such WeChat payout) / PG_ERR_MISMATCH
 * (another amount): nothing changed, res says why, the caller stores the
 * rejection. Other errors: answer failure, WeChat sends it again. */
pg_err payout_apply_notice(pg_app_t *app, arena_t *a, const wxv3_bill_t *bill, const payment_event_t *ev,
                           notify_result_t *res);

/* store_payout_list with one more column, confirm_url: the payee's
 * confirmation link of a WeChat payout waiting for the payee (PENDING with
 * package_info), NULL for the others. */
pg_err payout_list(pg_app_t *app, arena_t *a, const char *status, db_result_t *out);

/* The token of a payout's confirmation link (GET /payouts/{payout_no}/confirm?token=):
 * hex HMAC-SHA256 under [server] checkout_secret over "payout-confirm:" +
 * payout_no. out: 65 bytes. */
void payout_confirm_token(const pg_app_t *app, const char *payout_no, char out[65]);
/* The whole link (base_url + path + token), arena; NULL when base_url or
 * the secret is not set. */
const char *payout_confirm_link(const pg_app_t *app, arena_t *a, const char *payout_no);
/* Constant-time check of a link's token. */
bool payout_confirm_token_ok(const pg_app_t *app, const char *payout_no, const char *token);

#endif

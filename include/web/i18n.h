/* i18n: the words of the buyer-facing pages (QR page, return/status page,
 * JSAPI page, expired and error pages) and of the operator's console
 * (MSG_ADM_*) in Chinese and English. Each
 * language's messages live in one catalogue (src/i18n_zh_cn.c,
 * src/i18n_en.c); pages ask for a message by id and escape it as any
 * other text. The locale comes from [server] locale and the buyer's
 * Accept-Language. */
#ifndef I18N_H
#define I18N_H
#include <stdint.h>
#include "buf.h"
#include "pg_err.h"

typedef enum { I18N_ZH_CN = 0, I18N_EN = 1, I18N_LOCALE_COUNT } i18n_locale_t;

typedef enum {
    /* page titles */
    MSG_TITLE_CHECKOUT_FAILED,
    MSG_TITLE_CONFIRM_PAYMENT,
    MSG_TITLE_PAYMENT_RECEIVED,
    MSG_TITLE_PAYMENT_STATUS,
    MSG_TITLE_UNVERIFIED_RETURN,
    MSG_TITLE_PAY_WECHAT,
    MSG_TITLE_PAY_ALIPAY,
    MSG_TITLE_PAYMENT_EXPIRED,
    /* text */
    MSG_ERROR_CODE,             /* "Error code:" */
    MSG_CONFIRM_IN_WECHAT,
    MSG_ORDER,                  /* "Order" before the number */
    MSG_STATUS,                 /* "Status:" */
    MSG_MAY_TAKE_A_MOMENT,
    MSG_BACK_TO_SHOP,
    MSG_RETURN_NOT_VERIFIED,
    MSG_SCAN_WECHAT,
    MSG_SCAN_ALIPAY,
    MSG_PAYABLE_UNTIL,          /* one {} : the time */
    MSG_QR_NOT_DRAWN,
    MSG_WAITING_CONFIRMATION,
    MSG_PAID_THANKS,
    MSG_CONTINUE,
    MSG_EXPIRED_START_AGAIN,
    MSG_AFTER_PAYING,
    MSG_RELOAD_PAGE,
    MSG_TIME_ZONE,              /* after a time: "UTC", "(北京时间)" */
    /* order states */
    MSG_STATUS_CREATED,
    MSG_STATUS_PAID,
    MSG_STATUS_CLOSED,
    MSG_STATUS_REFUNDED,
    MSG_STATUS_PARTIALLY_REFUNDED,
    /* error pages, by error code (i18n_error_msg) */
    MSG_ERR_GENERIC,
    MSG_ERR_LINK_EXPIRED,
    MSG_ERR_BAD_SIGNATURE,
    MSG_ERR_UNKNOWN_PRODUCT,
    MSG_ERR_CHANNEL_DISABLED,
    MSG_ERR_UNSUPPORTED_METHOD,
    MSG_ERR_INVALID_REQUEST,
    MSG_ERR_PROVIDER,
    MSG_ERR_TRY_AGAIN,
    MSG_ERR_NO_SUCH_PAYMENT,
    MSG_ERR_ALIPAY_DISABLED,
    MSG_ERR_ORDER_NOT_OPEN,
    /* the operator's console (/admin/) */
    MSG_ADM_CONSOLE,
    MSG_ADM_NAV_TODAY,
    MSG_ADM_NAV_ORDERS,
    MSG_ADM_NAV_RECON,
    MSG_ADM_NAV_SETTLEMENT,
    MSG_ADM_NAV_CATALOGUE,
    MSG_ADM_NAV_WEBHOOKS,
    MSG_ADM_NAV_AUDIT,
    MSG_ADM_NAV_ACCOUNTS,
    MSG_ADM_LOGOUT,
    MSG_ADM_SIGNED_IN_AS,
    MSG_ADM_TITLE_LOGIN,
    MSG_ADM_USERNAME,
    MSG_ADM_PASSWORD,
    MSG_ADM_LOGIN_BUTTON,
    MSG_ADM_LOGIN_FAILED,
    MSG_ADM_LOGIN_THROTTLED,
    MSG_ADM_LOGGED_OUT,
    MSG_ADM_TITLE_DENIED,
    MSG_ADM_FORBIDDEN,
    MSG_ADM_CSRF_FAILED,
    MSG_ADM_NEED_LOGIN,
    MSG_ADM_NOT_FOUND,
    MSG_ADM_DB_ERROR,
    MSG_ADM_TITLE_TODAY,
    MSG_ADM_CHANNEL,
    MSG_ADM_GROSS,
    MSG_ADM_REFUNDS,
    MSG_ADM_FEES,
    MSG_ADM_NET,
    MSG_ADM_TOTAL,
    MSG_ADM_NOTHING_TODAY,
    MSG_ADM_ATTENTION,
    MSG_ADM_PAYMENTS_WAITING,
    MSG_ADM_REFUNDS_PENDING,
    MSG_ADM_REFUNDS_FAILED,
    MSG_ADM_REFUNDS_ABNORMAL,
    MSG_ADM_WEBHOOKS_DEAD,
    MSG_ADM_RECON_UNEXPLAINED,
    MSG_ADM_PAYOUTS,
    MSG_ADM_CHART_TITLE,
    MSG_ADM_TITLE_ORDERS,
    MSG_ADM_SEARCH,
    MSG_ADM_SEARCH_HINT,
    MSG_ADM_ANY,
    MSG_ADM_FROM,
    MSG_ADM_TO,
    MSG_ADM_NEXT_PAGE,
    MSG_ADM_NO_ROWS,
    MSG_ADM_COL_ORDER,
    MSG_ADM_COL_STATUS,
    MSG_ADM_COL_AMOUNT,
    MSG_ADM_COL_REFUNDED,
    MSG_ADM_COL_PRODUCT,
    MSG_ADM_COL_USER,
    MSG_ADM_COL_CREATED,
    MSG_ADM_COL_PAYMENT,
    MSG_ADM_COL_METHOD,
    MSG_ADM_COL_TRADE_NO,
    MSG_ADM_COL_PAID_AT,
    MSG_ADM_COL_REFUND,
    MSG_ADM_COL_KIND,
    MSG_ADM_COL_REASON,
    MSG_ADM_COL_FAILURE,
    MSG_ADM_COL_RECEIVED,
    MSG_ADM_COL_OUTCOME,
    MSG_ADM_COL_SOURCE,
    MSG_ADM_COL_BODY,
    MSG_ADM_COL_TXN,
    MSG_ADM_COL_ACCOUNT,
    MSG_ADM_COL_DAY,
    MSG_ADM_COL_EVENT,
    MSG_ADM_COL_TYPE,
    MSG_ADM_COL_ATTEMPTS,
    MSG_ADM_COL_LAST_ERROR,
    MSG_ADM_COL_GRANTED,
    MSG_ADM_COL_REVOKED,
    MSG_ADM_TITLE_ORDER,
    MSG_ADM_PAYMENTS,
    MSG_ADM_NOTIFICATIONS,
    MSG_ADM_LEDGER,
    MSG_ADM_WEBHOOK_EVENTS,
    MSG_ADM_ENTITLEMENT,
    MSG_ADM_ANOMALIES,
    MSG_ADM_ANOMALY_PAYMENT,
    MSG_ADM_ANOMALY_REFUND,
    MSG_ADM_REFUNDABLE,
    MSG_ADM_AMOUNT_FEN,
    MSG_ADM_REVIEW,
    MSG_ADM_CLOSE_ACTION,
    MSG_ADM_TITLE_CONFIRM,
    MSG_ADM_CONFIRM_REFUND_Q,
    MSG_ADM_CONFIRM_REFUND_ALL,
    MSG_ADM_CONFIRM_CLOSE_Q,
    MSG_ADM_CONFIRM,
    MSG_ADM_CANCEL,
    MSG_ADM_REFUND_DONE,
    MSG_ADM_REFUND_REFUSED,
    MSG_ADM_CLOSE_DONE,
    MSG_ADM_CLOSE_REFUSED,
    MSG_ADM_TITLE_REFUNDS,
    MSG_ADM_TITLE_RECON,
    MSG_ADM_RUN,
    MSG_ADM_COL_RUN,
    MSG_ADM_COL_BILL_DATE,
    MSG_ADM_COL_MATCHED,
    MSG_ADM_COL_UNEXPLAINED,
    MSG_ADM_COL_CATEGORY,
    MSG_ADM_COL_ADVICE,
    MSG_ADM_COL_DETAIL,
    MSG_ADM_COL_LOCAL,
    MSG_ADM_COL_BILL,
    MSG_ADM_ALL_MATCH,
    MSG_ADM_ADVICE_AMOUNT_MISMATCH,
    MSG_ADM_ADVICE_STATUS_MISMATCH,
    MSG_ADM_ADVICE_FEE_MISMATCH,
    MSG_ADM_ADVICE_MISSING_LOCAL,
    MSG_ADM_ADVICE_MISSING_PROVIDER,
    MSG_ADM_ADVICE_REFUND_ABNORMAL,
    MSG_ADM_TITLE_SETTLEMENT,
    MSG_ADM_COL_BATCH,
    MSG_ADM_COL_CREATOR,
    MSG_ADM_COL_SETTLE_DATE,
    MSG_ADM_COL_ENTRIES,
    MSG_ADM_DOWNLOAD_CSV,
    MSG_ADM_TITLE_CATALOGUE,
    MSG_ADM_PRODUCTS,
    MSG_ADM_CREATORS,
    MSG_ADM_COL_SKU,
    MSG_ADM_COL_TITLE,
    MSG_ADM_COL_PRICE,
    MSG_ADM_COL_ACTIVE,
    MSG_ADM_COL_APPSTORE_ID,
    MSG_ADM_COL_GOOGLEPLAY_ID,
    MSG_ADM_COL_NAME,
    MSG_ADM_COL_ID,
    MSG_ADM_COL_PRODUCTS,
    MSG_ADM_YES,
    MSG_ADM_NO,
    MSG_ADM_TITLE_WEBHOOKS,
    MSG_ADM_RETRY,
    MSG_ADM_RETRY_ALL_DEAD,
    MSG_ADM_RETRIED,
    MSG_ADM_TITLE_AUDIT,
    MSG_ADM_COL_WHEN,
    MSG_ADM_COL_WHO,
    MSG_ADM_COL_ACTION,
    MSG_ADM_COL_TARGET,
    MSG_ADM_COL_ADDRESS,
    MSG_ADM_TITLE_ACCOUNTS,
    MSG_ADM_COL_ROLE,
    MSG_ADM_COL_SESSIONS,
    MSG_ADM_ACCOUNTS_HINT,
    MSG_ADM_ACCOUNT_ADD,
    MSG_ADM_ACCOUNT_ADDED,
    MSG_ADM_ACCOUNT_CHANGED,
    MSG_ADM_ACCOUNT_REFUSED,
    MSG_ADM_DISABLE,
    MSG_ADM_ENABLE,
    MSG_ADM_H_BATCHES,
    MSG_ADM_H_PAYOUTS,
    MSG_ADM_COL_PAYOUT_ACCOUNT,
    MSG_ADM_COL_REAL_NAME,
    MSG_ADM_COL_WECHAT_OPENID,
    MSG_ADM_CONFIRM_PAYOUT_RETRY_Q,
    MSG_ADM_PAYOUT_RETRIED,
    MSG_ADM_PAYOUT_RETRY_REFUSED,
    MSG_ADM_PAYOUT_CONFIRM_LINK,
    MSG_TITLE_PAYOUT_CONFIRM,
    MSG_PAYOUT_CONFIRM_INTRO,
    MSG_PAYOUT_CONFIRM_BUTTON,
    MSG_PAYOUT_OPEN_IN_WECHAT,
    MSG_PAYOUT_CONFIRMED,
    MSG_PAYOUT_CANCELLED,
    MSG_PAYOUT_CONFIRM_FAILED,
    MSG_PAYOUT_CONFIRM_UNAVAILABLE,   /* wx.config cannot be signed (no app_secret, WeChat refused) or failed */
    MSG_TITLE_PAYOUT_PAID,
    MSG_PAYOUT_PAID,
    MSG_TITLE_PAYOUT_FAILED,
    MSG_PAYOUT_FAILED,
    MSG_TITLE_PAYOUT_PROCESSING,
    MSG_PAYOUT_PROCESSING,
    MSG_TITLE_PAYOUT_NOT_FOUND,
    MSG_PAYOUT_NOT_FOUND,
    MSG_COUNT
} i18n_msg_t;

/* The catalogues: MSG_COUNT plain-text (UTF-8) messages each. */
extern const char *const I18N_CATALOGUE_ZH_CN[MSG_COUNT];
extern const char *const I18N_CATALOGUE_EN[MSG_COUNT];

/* "zh-CN" or "en" (the value of [server] locale and of <html lang>). */
const char *i18n_locale_name(i18n_locale_t loc);
/* The message (never NULL: an id without text gives ""). */
const char *i18n_msg(i18n_locale_t loc, i18n_msg_t id);
/* The message for a stable error code (link_expired, bad_signature, ...);
 * MSG_ERR_GENERIC's for a code it does not know. */
const char *i18n_error_msg(i18n_locale_t loc, const char *code);
/* A page's status label for an order status; NULL for an unknown one. */
const char *i18n_status_msg(i18n_locale_t loc, const char *status);

/* The buyer's language: the best of zh (any zh-*) and en (any en-*) by
 * Accept-Language's q-values (q=0 refuses; "*" stands for the default;
 * on a tie the earlier entry wins); DFLT when the header is absent, names
 * neither, or is malformed or too long (over 512 bytes or 32 entries). */
i18n_locale_t i18n_negotiate(i18n_locale_t dflt, const char *accept_language);

/* Appends message ID with its "{}" replaced by ARG, HTML-escaped. */
pg_err i18n_append_html(buf_t *b, i18n_locale_t loc, i18n_msg_t id, const char *arg);
/* "¥99.00" (both locales: the amount is in yuan). */
pg_err i18n_append_amount(buf_t *b, int64_t fen);
/* An amount in minor units of currency (lowercase ISO code; NULL or "cny":
 * yuan as above): its symbol ("US$", "€", "JP¥", ...) or upper-case code,
 * and no decimals for a zero-decimal currency ("JP¥9900", "₩15000"). */
pg_err i18n_append_amount_in(buf_t *b, int64_t minor, const char *currency);
/* A UTC time "YYYY-MM-DDTHH:MM:SSZ" for people: zh-CN in Beijing time
 * (UTC+8, no DST) "2026-01-02 08:30 (北京时间)", en "2026-01-02 00:30 UTC".
 * PG_ERR_BAD_INPUT (nothing appended) when ISO does not parse. */
pg_err i18n_append_time(buf_t *b, i18n_locale_t loc, const char *iso_utc);

#endif

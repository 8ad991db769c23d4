/* i18n: the words of the buyer-facing pages (QR page, return/status page,
 * JSAPI page, expired and error pages) in Chinese and English. Each
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
/* A UTC time "YYYY-MM-DDTHH:MM:SSZ" for people: zh-CN in Beijing time
 * (UTC+8, no DST) "2026-01-02 08:30 (北京时间)", en "2026-01-02 00:30 UTC".
 * PG_ERR_BAD_INPUT (nothing appended) when ISO does not parse. */
pg_err i18n_append_time(buf_t *b, i18n_locale_t loc, const char *iso_utc);

#endif

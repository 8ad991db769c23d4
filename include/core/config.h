/* config: the one INI file both programs read (SPEC §3). Loaded and
 * validated once at start-up; lives for the process. Every problem is
 * reported with file, section and key. */
#ifndef CONFIG_H
#define CONFIG_H
#include <stdbool.h>
#include <stdint.h>
#include "buf.h"
#include "crypto.h"
#include "netaddr.h"
#include "pg_err.h"

typedef struct pg_config {
    char *path;
    struct {
        char *base_url;        /* no trailing slash */
        char *base_path;       /* path part of base_url, "" for the root */
        char *api_key;
        char *checkout_secret;
        int64_t order_ttl;     /* seconds */
        char *log_file;        /* "-" = stderr */
        bool locale_en;        /* locale = en; else zh-CN (buyer pages' default) */
        int64_t notification_retention_days;   /* rejected notifications are pruned after this */
        int64_t rejected_notifications_per_minute;   /* stored per source and minute; beyond: counted */
        char *trusted_proxies_text;            /* as written */
        netaddr_list_t trusted_proxies;        /* whose X-Forwarded-For is believed */
    } server;
    struct {
        char *host;
        int port;
        char *socket;
        char *user;
        char *password;
        char *name;
    } database;
    struct {
        bool enabled;
        char *app_id;
        char *gateway;
        char *app_private_key_file;
        char *alipay_public_key_file;
        char *seller_id;
        char *ca_file;
        crypto_key_t *app_private_key;
        crypto_key_t *alipay_public_key;   /* in certificate mode: alipay_cert's key */
        /* certificate mode (SPEC §12.2): all three set instead of alipay_public_key */
        char *app_cert_file;
        char *alipay_cert_file;
        char *alipay_root_cert_file;
        bool cert_mode;
        char app_cert_sn[33];              /* computed when the keys are loaded */
        char alipay_cert_sn[33];
        char *alipay_root_cert_sn;
        char *warnings;                    /* lines for check-config (expiry), NULL = none */
    } alipay;
    struct {
        bool enabled;
        char *appid;
        char *mch_id;
        char *api_key;
        char *sign_type;       /* "MD5" or "HMAC-SHA256" */
        char *gateway;
        char *client_cert;
        char *client_key;
        char *ca_file;
        /* API v3 (SPEC §12.1). api_v3: new payments use v3. The v3 keys
         * below are checked whenever they are given, and required with v3. */
        bool api_v3;                     /* api_version = v3 */
        char *api_v3_key;                /* 32 bytes: AES-256-GCM key */
        char *mch_serial_no;             /* upper-case hex; from client_cert when not given */
        char *wechatpay_public_key_file; /* public-key mode: pub_key.pem */
        char *wechatpay_public_key_id;   /* PUB_KEY_ID_... */
        char *platform_cert_dir;         /* platform-certificate mode */
        crypto_key_t *mch_key;           /* client_key, loaded (v3 signs with it) */
        crypto_key_t *wechatpay_public_key;
        /* The Official Account (公众号) of appid: its AppSecret fetches the
         * access token and the JS-SDK jsapi_ticket that the payee's
         * confirmation page signs wx.config with. */
        char *app_secret;                /* NULL = not configured: payees cannot confirm in WeChat */
        char *mp_api_base;               /* https://api.weixin.qq.com, or the sandbox's */
        char *warnings;                  /* lines for check-config, NULL = none */
    } wechat;
    struct {
        bool enabled;
        char *secret_key;      /* sk_live_... / sk_test_... */
        char *webhook_secret;  /* whsec_...: the endpoint's signing secret */
        char *api_base;        /* https://api.stripe.com, or the sandbox's */
        char *currency;        /* lowercase ISO code; prices are its minor unit */
        int64_t fee_rate_bp;   /* estimate until Stripe's balance transaction says */
        char *ca_file;
    } stripe;
    struct {
        int64_t alipay_rate_bp;
        int64_t wechat_rate_bp;
        bool surcharge;        /* mode = surcharge; else absorb */
    } fees;
    struct {
        bool delayed;          /* mode = delayed; else realtime */
        int64_t delay_days;
        int64_t platform_commission_bp;
    } settlement;
    struct {
        char *webhook_url;
        char *webhook_secret;
        char *return_url;
    } merchant;
    struct {
        bool storefront;
        char *appstore_phone;   /* the sandbox's App Store "phone" page, "" = none */
        char *googleplay_phone; /* the sandbox's Google Play "phone" page, "" = none */
    } demo;
    struct {                   /* [appstore] (SPEC 12.5): in-app purchases on iOS */
        bool enabled;
        char *bundle_id;
        char *app_apple_id;    /* digits as written */
        int64_t app_apple_id_num;
        char *environment;     /* "Production" | "Sandbox" */
        char *root_cert;       /* Apple Root CA - G3, DER or PEM */
        char *issuer_id;       /* App Store Server API key: issuer, key id, .p8 file */
        char *key_id;
        char *private_key;
        char *api_base;
        int64_t store_fee_bp;  /* Apple's commission, booked as the channel fee */
        char *ca_file;
    } appstore;
    struct {                   /* [googleplay] (SPEC 12.5): in-app purchases on Android */
        bool enabled;
        char *package_name;
        char *service_account; /* the service account's JSON file */
        char *api_base;
        char *push_audience;
        char *push_email;
        char *push_certs_url;
        int64_t store_fee_bp;
        char *ca_file;
    } googleplay;
    struct {
        bool enabled;          /* [payouts] enabled: pay settlement batches by transfer */
        char *channel;         /* "alipay" (transfer to an Alipay account) | "wechat" */
        int64_t min_fen;       /* smaller balances wait for the next batch */
        char *start_date;      /* YYYY-MM-DD: batches settled before it are never paid out automatically */
    } payouts;
    struct {
        bool enabled;          /* default true; false: no counting, /metrics is 404 */
        char *state_file;      /* shared counters; NULL = metrics_default_path */
        char *allow;           /* CIDR list allowed to GET /metrics; NULL = none */
        char *token;           /* bearer token for GET /metrics; NULL = none */
    } metrics;
} pg_config_t;

/* Reads and validates path. On failure returns PG_ERR_CONFIG and appends one
 * line per problem to errors ("FILE: [section] key: reason"). With
 * load_keys false the key files are only checked for readability (tests). */
pg_err config_load(const char *path, bool load_keys, pg_config_t **out, buf_t *errors);
void   config_free(pg_config_t *cfg);

/* -c FILE wins, then $PAYGATE_CONFIG; NULL when neither is given. */
const char *config_default_path(const char *from_args);

#endif

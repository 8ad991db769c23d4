/* config: INI loading (inih) and validation. See include/config.h. */
#include "config.h"
#include "ledger_math.h"
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "db.h"
#include "stripe.h"
#include "wechat.h"
#include "alipay_cert.h"
#include "certs.h"
#include <time.h>

#include "crypto_v3.h"

typedef enum { CK_STR, CK_INT, CK_BOOL, CK_ENUM } config_kind_t;

typedef struct config_key {
    const char *section;
    const char *name;
    config_kind_t kind;
    size_t offset;
    const char *choices;      /* CK_ENUM: "a|b" */
} config_key_t;

#define K(sec, key, kind, field, choices) { sec, key, kind, offsetof(pg_config_t, field), choices }
static const config_key_t CONFIG_KEYS[] = {
    K("server", "base_url", CK_STR, server.base_url, NULL),
    K("server", "api_key", CK_STR, server.api_key, NULL),
    K("server", "checkout_secret", CK_STR, server.checkout_secret, NULL),
    K("server", "order_ttl", CK_INT, server.order_ttl, NULL),
    K("server", "log_file", CK_STR, server.log_file, NULL),
    K("server", "locale", CK_ENUM, server.locale_en, "zh-CN|en"),
    K("server", "notification_retention_days", CK_INT, server.notification_retention_days, NULL),
    K("server", "trusted_proxies", CK_STR, server.trusted_proxies_text, NULL),
    K("server", "rejected_notifications_per_minute", CK_INT, server.rejected_notifications_per_minute, NULL),
    K("database", "host", CK_STR, database.host, NULL),
    K("database", "port", CK_INT, database.port, NULL),
    K("database", "socket", CK_STR, database.socket, NULL),
    K("database", "user", CK_STR, database.user, NULL),
    K("database", "password", CK_STR, database.password, NULL),
    K("database", "name", CK_STR, database.name, NULL),
    K("alipay", "enabled", CK_BOOL, alipay.enabled, NULL),
    K("alipay", "app_id", CK_STR, alipay.app_id, NULL),
    K("alipay", "gateway", CK_STR, alipay.gateway, NULL),
    K("alipay", "app_private_key", CK_STR, alipay.app_private_key_file, NULL),
    K("alipay", "alipay_public_key", CK_STR, alipay.alipay_public_key_file, NULL),
    K("alipay", "seller_id", CK_STR, alipay.seller_id, NULL),
    K("alipay", "ca_file", CK_STR, alipay.ca_file, NULL),
    K("alipay", "app_cert", CK_STR, alipay.app_cert_file, NULL),
    K("alipay", "alipay_cert", CK_STR, alipay.alipay_cert_file, NULL),
    K("alipay", "alipay_root_cert", CK_STR, alipay.alipay_root_cert_file, NULL),
    K("wechat", "enabled", CK_BOOL, wechat.enabled, NULL),
    K("wechat", "appid", CK_STR, wechat.appid, NULL),
    K("wechat", "mch_id", CK_STR, wechat.mch_id, NULL),
    K("wechat", "api_key", CK_STR, wechat.api_key, NULL),
    K("wechat", "sign_type", CK_ENUM, wechat.sign_type, "MD5|HMAC-SHA256"),
    K("wechat", "gateway", CK_STR, wechat.gateway, NULL),
    K("wechat", "client_cert", CK_STR, wechat.client_cert, NULL),
    K("wechat", "client_key", CK_STR, wechat.client_key, NULL),
    K("wechat", "ca_file", CK_STR, wechat.ca_file, NULL),
    K("wechat", "api_version", CK_ENUM, wechat.api_v3, "v2|v3"),
    K("wechat", "api_v3_key", CK_STR, wechat.api_v3_key, NULL),
    K("wechat", "mch_serial_no", CK_STR, wechat.mch_serial_no, NULL),
    K("wechat", "wechatpay_public_key", CK_STR, wechat.wechatpay_public_key_file, NULL),
    K("wechat", "wechatpay_public_key_id", CK_STR, wechat.wechatpay_public_key_id, NULL),
    K("wechat", "platform_cert_dir", CK_STR, wechat.platform_cert_dir, NULL),
    K("wechat", "app_secret", CK_STR, wechat.app_secret, NULL),
    K("wechat", "mp_api_base", CK_STR, wechat.mp_api_base, NULL),
    K("stripe", "enabled", CK_BOOL, stripe.enabled, NULL),
    K("stripe", "secret_key", CK_STR, stripe.secret_key, NULL),
    K("stripe", "webhook_secret", CK_STR, stripe.webhook_secret, NULL),
    K("stripe", "api_base", CK_STR, stripe.api_base, NULL),
    K("stripe", "currency", CK_STR, stripe.currency, NULL),
    K("stripe", "fee_rate_bp", CK_INT, stripe.fee_rate_bp, NULL),
    K("stripe", "ca_file", CK_STR, stripe.ca_file, NULL),
    K("fees", "alipay_rate_bp", CK_INT, fees.alipay_rate_bp, NULL),
    K("fees", "wechat_rate_bp", CK_INT, fees.wechat_rate_bp, NULL),
    K("fees", "mode", CK_ENUM, fees.surcharge, "absorb|surcharge"),
    K("settlement", "mode", CK_ENUM, settlement.delayed, "realtime|delayed"),
    K("settlement", "delay_days", CK_INT, settlement.delay_days, NULL),
    K("settlement", "platform_commission_bp", CK_INT, settlement.platform_commission_bp, NULL),
    K("merchant", "webhook_url", CK_STR, merchant.webhook_url, NULL),
    K("merchant", "webhook_secret", CK_STR, merchant.webhook_secret, NULL),
    K("merchant", "return_url", CK_STR, merchant.return_url, NULL),
    K("demo", "storefront", CK_BOOL, demo.storefront, NULL),
    K("demo", "appstore_phone", CK_STR, demo.appstore_phone, NULL),
    K("demo", "googleplay_phone", CK_STR, demo.googleplay_phone, NULL),
    K("payouts", "enabled", CK_BOOL, payouts.enabled, NULL),
    K("payouts", "channel", CK_ENUM, payouts.channel, "alipay|wechat"),
    K("payouts", "min_fen", CK_INT, payouts.min_fen, NULL),
    K("payouts", "start_date", CK_STR, payouts.start_date, NULL),
    K("metrics", "enabled", CK_BOOL, metrics.enabled, NULL),
    K("metrics", "state_file", CK_STR, metrics.state_file, NULL),
    K("metrics", "allow", CK_STR, metrics.allow, NULL),
    K("metrics", "token", CK_STR, metrics.token, NULL),
    K("appstore", "enabled", CK_BOOL, appstore.enabled, NULL),
    K("appstore", "bundle_id", CK_STR, appstore.bundle_id, NULL),
    K("appstore", "app_apple_id", CK_STR, appstore.app_apple_id, NULL),
    K("appstore", "environment", CK_STR, appstore.environment, NULL),
    K("appstore", "root_cert", CK_STR, appstore.root_cert, NULL),
    K("appstore", "issuer_id", CK_STR, appstore.issuer_id, NULL),
    K("appstore", "key_id", CK_STR, appstore.key_id, NULL),
    K("appstore", "private_key", CK_STR, appstore.private_key, NULL),
    K("appstore", "api_base", CK_STR, appstore.api_base, NULL),
    K("appstore", "store_fee_bp", CK_INT, appstore.store_fee_bp, NULL),
    K("appstore", "ca_file", CK_STR, appstore.ca_file, NULL),
    K("googleplay", "enabled", CK_BOOL, googleplay.enabled, NULL),
    K("googleplay", "package_name", CK_STR, googleplay.package_name, NULL),
    K("googleplay", "service_account", CK_STR, googleplay.service_account, NULL),
    K("googleplay", "api_base", CK_STR, googleplay.api_base, NULL),
    K("googleplay", "push_audience", CK_STR, googleplay.push_audience, NULL),
    K("googleplay", "push_email", CK_STR, googleplay.push_email, NULL),
    K("googleplay", "push_certs_url", CK_STR, googleplay.push_certs_url, NULL),
    K("googleplay", "store_fee_bp", CK_INT, googleplay.store_fee_bp, NULL),
    K("googleplay", "ca_file", CK_STR, googleplay.ca_file, NULL),
};
#undef K
#define CONFIG_KEY_COUNT (sizeof CONFIG_KEYS / sizeof CONFIG_KEYS[0])

typedef struct config_loader {
    pg_config_t *cfg;
    buf_t *errors;
    int problems;
    bool seen[CONFIG_KEY_COUNT];
} config_loader_t;

static void config_problem(config_loader_t *l, const char *section, const char *key,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void config_problem(config_loader_t *l, const char *section, const char *key,
                           const char *fmt, ...)
{
    va_list ap;
    buf_printf(l->errors, "%s: [%s]%s%s: ", l->cfg->path, section, key ? " " : "", key ? key : "");
    va_start(ap, fmt);
    buf_vprintf(l->errors, fmt, ap);
    va_end(ap);
    buf_putc(l->errors, '\n');
    l->problems++;
}

static bool parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    long long v;
    if (*s == '\0' || !((*s >= '0' && *s <= '9') || *s == '-'))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (int64_t)v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on") || !strcmp(s, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !strcmp(s, "0")) {
        *out = false;
        return true;
    }
    return false;
}

/* Position of value in "a|b|c", or -1. */
static int enum_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int i = 0;
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && !strncmp(p, value, n))
            return i;
        if (!bar)
            break;
        p = bar + 1;
        i++;
    }
    return -1;
}

static void store_value(config_loader_t *l, const config_key_t *k, const char *value)
{
    char *base = (char *)l->cfg;
    void *field = base + k->offset;
    int64_t n;
    bool b;
    switch (k->kind) {
    case CK_STR: {
        char **slot = field;
        free(*slot);
        *slot = strdup(value);
        break;
    }
    case CK_INT: {
        int64_t hi = !strcmp(k->name, "port") ? 65535 : INT64_C(1000000000);
        if (!parse_int64(value, 0, hi, &n)) {
            config_problem(l, k->section, k->name, "'%s' is not a whole number in 0..%lld",
                           value, (long long)hi);
            return;
        }
        if (!strcmp(k->name, "port"))
            *(int *)field = (int)n;
        else
            *(int64_t *)field = n;
        break;
    }
    case CK_BOOL:
        if (!parse_bool(value, &b)) {
            config_problem(l, k->section, k->name, "'%s' is not true or false", value);
            return;
        }
        *(bool *)field = b;
        break;
    case CK_ENUM: {
        int idx = enum_index(k->choices, value);
        if (idx < 0) {
            config_problem(l, k->section, k->name, "'%s' is not one of %s", value, k->choices);
            return;
        }
        if (!strcmp(k->name, "sign_type") || !strcmp(k->section, "payouts")) {   /* string enums */
            char **slot = field;
            free(*slot);
            *slot = strdup(value);
        } else {
            *(bool *)field = idx == 1;
        }
        break;
    }
    }
}

static int config_on_pair(void *user, const char *section, const char *name, const char *value)
{
    config_loader_t *l = user;
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        const config_key_t *k = &CONFIG_KEYS[i];
        if (strcmp(k->section, section) || strcmp(k->name, name))
            continue;
        if (l->seen[i])
            config_problem(l, section, name, "given twice");
        l->seen[i] = true;
        store_value(l, k, value);
        return 1;
    }
    config_problem(l, section, name, "unknown key");
    return 1;   /* keep going: report every problem at once */
}

static bool is_set(const char *s)
{
    return s != NULL && *s != '\0';
}

static void require(config_loader_t *l, const char *section, const char *key, const char *value)
{
    if (!is_set(value))
        config_problem(l, section, key, "missing (required)");
}

static void set_defaults(pg_config_t *c)
{
    c->server.order_ttl = 900;
    c->server.log_file = strdup("-");
    c->server.notification_retention_days = 90;
    c->server.rejected_notifications_per_minute = 30;
    c->database.host = strdup("127.0.0.1");
    c->database.port = 3306;
    c->database.name = strdup("paygate");
    c->alipay.gateway = strdup("https://openapi.alipay.com/gateway.do");
    c->wechat.gateway = strdup("https://api.mch.weixin.qq.com");
    c->wechat.sign_type = strdup("HMAC-SHA256");
    c->wechat.mp_api_base = strdup("https://api.weixin.qq.com");
    c->stripe.api_base = strdup("https://api.stripe.com");
    c->stripe.currency = strdup("cny");
    c->stripe.fee_rate_bp = 340;
    c->fees.alipay_rate_bp = 60;
    c->fees.wechat_rate_bp = 60;
    c->settlement.delayed = true;
    c->settlement.delay_days = 7;
    c->settlement.platform_commission_bp = 3000;
    c->metrics.enabled = true;
    c->payouts.channel = strdup("alipay");
    c->payouts.min_fen = 100;
    c->appstore.environment = strdup("Production");
    c->appstore.api_base = strdup("https://api.storekit.itunes.apple.com");
    c->appstore.store_fee_bp = 3000;
    c->googleplay.api_base = strdup("https://androidpublisher.googleapis.com");
    c->googleplay.push_certs_url = strdup("https://www.googleapis.com/oauth2/v3/certs");
    c->googleplay.store_fee_bp = 1500;
}

static void validate_url(config_loader_t *l, const char *section, const char *key, const char *url)
{
    if (is_set(url) && strncmp(url, "https://", 8) && strncmp(url, "http://", 7))
        config_problem(l, section, key, "'%s' is not an http(s) URL", url);
}

static void derive_base_path(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    char *url = c->server.base_url;
    const char *host, *slash;
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    host = strstr(url, "://");
    slash = host ? strchr(host + 3, '/') : NULL;
    c->server.base_path = strdup(slash ? slash : "");
    if (strchr(c->server.base_path, '?') || strchr(c->server.base_path, '#'))
        config_problem(l, "server", "base_url", "must not carry a query or fragment");
}

static void validate_trusted_proxies(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    buf_t why;
    buf_init(&why, NULL);
    if (netaddr_list_parse(c->server.trusted_proxies_text, &c->server.trusted_proxies, &why) != PG_OK)
        config_problem(l, "server", "trusted_proxies", "%s (a list of addresses or CIDR ranges)",
                       why.len ? why.data : "out of memory");
    buf_free(&why);
}

/* [database] host: one host or h1,h2:port,[v6]:port (db_hosts_parse). */
static void validate_db_hosts(config_loader_t *l)
{
    db_host_t hosts[DB_MAX_HOSTS];
    size_t n;
    buf_t why;
    buf_init(&why, NULL);
    if (db_hosts_parse(l->cfg->database.host, l->cfg->database.port, hosts, &n, &why) != PG_OK)
        config_problem(l, "database", "host", "%s (name[:port] or [IPv6][:port], comma-separated)",
                       why.len ? why.data : "out of memory");
    buf_free(&why);
}

static void validate_server(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    require(l, "server", "base_url", c->server.base_url);
    require(l, "server", "api_key", c->server.api_key);
    require(l, "server", "checkout_secret", c->server.checkout_secret);
    if (is_set(c->server.base_url)) {
        validate_url(l, "server", "base_url", c->server.base_url);
        derive_base_path(l);
    }
    if (is_set(c->server.api_key) && strlen(c->server.api_key) < 16)
        config_problem(l, "server", "api_key", "too short: use at least 16 random characters");
    if (is_set(c->server.checkout_secret) && strlen(c->server.checkout_secret) < 16)
        config_problem(l, "server", "checkout_secret", "too short: use at least 16 random characters");
    if (c->server.order_ttl < 60 || c->server.order_ttl > 86400 * 15)
        config_problem(l, "server", "order_ttl", "must be between 60 and 1296000 seconds");
    if (c->server.notification_retention_days < 1 || c->server.notification_retention_days > 3650)
        config_problem(l, "server", "notification_retention_days", "must be between 1 and 3650 days");
    if (c->server.rejected_notifications_per_minute < 1)
        config_problem(l, "server", "rejected_notifications_per_minute", "must be at least 1");
    validate_trusted_proxies(l);
    validate_db_hosts(l);
    require(l, "database", "user", c->database.user);
    require(l, "database", "name", c->database.name);
}

static void check_readable(config_loader_t *l, const char *section, const char *key, const char *path)
{
    if (is_set(path) && access(path, R_OK) != 0)
        config_problem(l, section, key, "cannot read '%s': %s", path, strerror(errno));
}

static void load_alipay_keys(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    buf_t why;
    crypto_key_t *as_private = NULL;
    buf_init(&why, NULL);
    if (crypto_key_load_private(c->alipay.app_private_key_file, &c->alipay.app_private_key, &why) != PG_OK)
        config_problem(l, "alipay", "app_private_key", "'%s' holds no usable RSA private key: %s",
                       c->alipay.app_private_key_file, why.data);
    buf_clear(&why);
    if (crypto_key_load_private(c->alipay.alipay_public_key_file, &as_private, &why) == PG_OK) {
        config_problem(l, "alipay", "alipay_public_key",
                       "'%s' holds a private key; this key must be Alipay's public key",
                       c->alipay.alipay_public_key_file);
        crypto_key_free(as_private);
    } else {
        buf_clear(&why);
        if (crypto_key_load_public(c->alipay.alipay_public_key_file, &c->alipay.alipay_public_key, &why) != PG_OK)
            config_problem(l, "alipay", "alipay_public_key", "'%s' holds no usable RSA public key: %s",
                           c->alipay.alipay_public_key_file, why.data);
    }
    if (c->alipay.app_private_key && c->alipay.alipay_public_key &&
        crypto_key_pair_matches(c->alipay.app_private_key, c->alipay.alipay_public_key))
        config_problem(l, "alipay", "alipay_public_key",
                       "'%s' is the public half of your app key (app_private_key), not Alipay's "
                       "public key: download Alipay's public key from the open platform",
                       c->alipay.alipay_public_key_file);
    buf_free(&why);
}

/* Certificate mode: the app key signs and app_cert carries its public half;
 * alipay_cert (chained to alipay_root_cert) carries Alipay's key; the SNs go
 * on every request. Expiry within 30 days is a warning, not a refusal. */
#define ALIPAY_CERT_WARN_DAYS 30

static void cert_expiry_warning(const char *cfgpath, const char *key, const char *file,
                                const x509_bundle_t *b, buf_t *warn)
{
    time_t not_after, now = time(NULL);
    size_t i;
    for (i = 0; i < x509_bundle_count(b); i++) {
        if (x509_not_after(b, i, &not_after) != PG_OK)
            continue;
        if (not_after < now)
            buf_printf(warn, "%s: warning: [alipay] %s: certificate %zu of '%s' has EXPIRED: renew it on the open platform\n",
                       cfgpath, key, i + 1, file);
        else if (not_after - now < (time_t)ALIPAY_CERT_WARN_DAYS * 86400)
            buf_printf(warn, "%s: warning: [alipay] %s: certificate %zu of '%s' expires in %lld days: renew it on the open platform\n",
                       cfgpath, key, i + 1, file, (long long)((not_after - now) / 86400));
    }
}

static bool load_cert_bundle(config_loader_t *l, const char *key, const char *file, x509_bundle_t **out)
{
    buf_t why;
    bool ok;
    buf_init(&why, NULL);
    ok = x509_bundle_load(file, out, &why) == PG_OK;
    if (!ok)
        config_problem(l, "alipay", key, "'%s' holds no usable certificate: %s", file,
                       why.len ? why.data : "unreadable");
    buf_free(&why);
    return ok;
}

static void load_alipay_certs(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    x509_bundle_t *app = NULL, *ali = NULL, *root = NULL;
    crypto_key_t *app_key = NULL;
    buf_t why, warn, rootsn;
    buf_init(&why, NULL);
    buf_init(&warn, NULL);
    buf_init(&rootsn, NULL);
    if (crypto_key_load_private(c->alipay.app_private_key_file, &c->alipay.app_private_key, &why) != PG_OK)
        config_problem(l, "alipay", "app_private_key", "'%s' holds no usable RSA private key: %s",
                       c->alipay.app_private_key_file, why.data);
    if (!load_cert_bundle(l, "app_cert", c->alipay.app_cert_file, &app) ||
        !load_cert_bundle(l, "alipay_cert", c->alipay.alipay_cert_file, &ali) ||
        !load_cert_bundle(l, "alipay_root_cert", c->alipay.alipay_root_cert_file, &root))
        goto done;
    buf_clear(&why);
    if (x509_public_key(app, 0, &app_key, &why) != PG_OK)
        config_problem(l, "alipay", "app_cert", "'%s' carries no RSA public key: %s", c->alipay.app_cert_file, why.data);
    else if (c->alipay.app_private_key && !crypto_key_pair_matches(c->alipay.app_private_key, app_key))
        config_problem(l, "alipay", "app_cert", "'%s' is not the certificate of app_private_key '%s': "
                       "upload the CSR of this key pair and download its certificate again",
                       c->alipay.app_cert_file, c->alipay.app_private_key_file);
    buf_clear(&why);
    if (x509_public_key(ali, 0, &c->alipay.alipay_public_key, &why) != PG_OK)
        config_problem(l, "alipay", "alipay_cert", "'%s' carries no RSA public key: %s", c->alipay.alipay_cert_file, why.data);
    else if (c->alipay.app_private_key && crypto_key_pair_matches(c->alipay.app_private_key, c->alipay.alipay_public_key))
        config_problem(l, "alipay", "alipay_cert", "'%s' is your app certificate, not Alipay's (alipayCertPublicKey_RSA2.crt)",
                       c->alipay.alipay_cert_file);
    if (!x509_chains_to(ali, root))
        config_problem(l, "alipay", "alipay_cert", "'%s' is not issued under alipay_root_cert '%s'",
                       c->alipay.alipay_cert_file, c->alipay.alipay_root_cert_file);
    if (alipay_cert_sn_of(app, 0, c->alipay.app_cert_sn) != PG_OK ||
        alipay_cert_sn_of(ali, 0, c->alipay.alipay_cert_sn) != PG_OK)
        config_problem(l, "alipay", "app_cert", "cannot compute the certificate SNs");
    if (alipay_root_cert_sn_of(root, &rootsn) != PG_OK || rootsn.failed)
        config_problem(l, "alipay", "alipay_root_cert", "'%s' holds no RSA-signed root certificate",
                       c->alipay.alipay_root_cert_file);
    else
        c->alipay.alipay_root_cert_sn = strdup(rootsn.data);
    cert_expiry_warning(c->path, "app_cert", c->alipay.app_cert_file, app, &warn);
    cert_expiry_warning(c->path, "alipay_cert", c->alipay.alipay_cert_file, ali, &warn);
    cert_expiry_warning(c->path, "alipay_root_cert", c->alipay.alipay_root_cert_file, root, &warn);
    if (warn.len > 0)
        c->alipay.warnings = strdup(warn.data);
done:
    crypto_key_free(app_key);
    x509_bundle_free(app);
    x509_bundle_free(ali);
    x509_bundle_free(root);
    buf_free(&why);
    buf_free(&warn);
    buf_free(&rootsn);
}

static void validate_alipay_mode(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    c->alipay.cert_mode = is_set(c->alipay.app_cert_file) || is_set(c->alipay.alipay_cert_file) ||
                          is_set(c->alipay.alipay_root_cert_file);
    if (!c->alipay.cert_mode) {
        require(l, "alipay", "alipay_public_key", c->alipay.alipay_public_key_file);
        check_readable(l, "alipay", "alipay_public_key", c->alipay.alipay_public_key_file);
        return;
    }
    if (is_set(c->alipay.alipay_public_key_file))
        config_problem(l, "alipay", "alipay_public_key",
                       "set together with app_cert/alipay_cert/alipay_root_cert: choose one mode "
                       "(public-key mode: alipay_public_key only; certificate mode: the three certificates only)");
    require(l, "alipay", "app_cert", c->alipay.app_cert_file);
    require(l, "alipay", "alipay_cert", c->alipay.alipay_cert_file);
    require(l, "alipay", "alipay_root_cert", c->alipay.alipay_root_cert_file);
    check_readable(l, "alipay", "app_cert", c->alipay.app_cert_file);
    check_readable(l, "alipay", "alipay_cert", c->alipay.alipay_cert_file);
    check_readable(l, "alipay", "alipay_root_cert", c->alipay.alipay_root_cert_file);
}

static void validate_alipay(config_loader_t *l, bool load_keys)
{
    pg_config_t *c = l->cfg;
    if (!c->alipay.enabled)
        return;
    require(l, "alipay", "app_id", c->alipay.app_id);
    require(l, "alipay", "gateway", c->alipay.gateway);
    require(l, "alipay", "app_private_key", c->alipay.app_private_key_file);
    validate_alipay_mode(l);
    validate_url(l, "alipay", "gateway", c->alipay.gateway);
    check_readable(l, "alipay", "app_private_key", c->alipay.app_private_key_file);
    check_readable(l, "alipay", "ca_file", c->alipay.ca_file);
    if (load_keys && l->problems == 0) {
        if (c->alipay.cert_mode)
            load_alipay_certs(l);
        else
            load_alipay_keys(l);
    }
}

/* ---- WeChat Pay API v3 keys ------------------------------------------ */

static bool wechat_v3_given(const pg_config_t *c)
{
    return c->wechat.api_v3 || is_set(c->wechat.api_v3_key) || is_set(c->wechat.mch_serial_no) ||
           is_set(c->wechat.wechatpay_public_key_file) || is_set(c->wechat.wechatpay_public_key_id) ||
           is_set(c->wechat.platform_cert_dir);
}

static bool is_pub_key_id(const char *s)
{
    size_t n = strlen(s), prefix = strlen("PUB_KEY_ID_");
    if (n <= prefix || n > 64 || strncmp(s, "PUB_KEY_ID_", prefix) != 0)
        return false;
    for (size_t i = prefix; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return true;
}

static void check_dir(config_loader_t *l, const char *key, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        config_problem(l, "wechat", key, "'%s' is not a directory", path);
    else if (access(path, R_OK | W_OK | X_OK) != 0)
        config_problem(l, "wechat", key, "'%s' must be readable and writable: %s", path, strerror(errno));
}

/* The serial of client_cert; mch_serial_no, when given, must name it. */
static void load_wechat_serial(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    char serial[CRYPTO_X509_SERIAL_MAX + 1];
    buf_t text, why;
    FILE *f = fopen(c->wechat.client_cert, "rb");
    size_t n;
    char chunk[4096];

    buf_init(&text, NULL);
    buf_init(&why, NULL);
    while (f != NULL && (n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len < 65536)
        buf_append(&text, chunk, n);
    if (f != NULL)
        fclose(f);
    if (crypto_x509_serial_hex(text.data, text.len, serial, &why) != PG_OK) {
        config_problem(l, "wechat", "client_cert", "'%s' holds no usable certificate: %s",
                       c->wechat.client_cert, why.data);
    } else if (is_set(c->wechat.mch_serial_no) && strcasecmp(c->wechat.mch_serial_no, serial) != 0) {
        config_problem(l, "wechat", "mch_serial_no", "'%s' is not the serial of client_cert (%s)",
                       c->wechat.mch_serial_no, serial);
    } else {
        free(c->wechat.mch_serial_no);
        c->wechat.mch_serial_no = strdup(serial);
    }
    buf_free(&text);
    buf_free(&why);
}

/* WeChat Pay's public key: a public key, and not the merchant's own. */
static void load_wechatpay_public_key(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    const char *file = c->wechat.wechatpay_public_key_file;
    crypto_key_t *as_private = NULL;
    buf_t why;

    buf_init(&why, NULL);
    if (crypto_key_load_private(file, &as_private, &why) == PG_OK) {
        config_problem(l, "wechat", "wechatpay_public_key",
                       "'%s' holds a private key; this must be WeChat Pay's public key", file);
        crypto_key_free(as_private);
        goto done;
    }
    buf_clear(&why);
    if (crypto_key_load_public(file, &c->wechat.wechatpay_public_key, &why) != PG_OK) {
        config_problem(l, "wechat", "wechatpay_public_key", "'%s' holds no usable RSA public key: %s",
                       file, why.data);
        goto done;
    }
    if (c->wechat.mch_key && crypto_key_pair_matches(c->wechat.mch_key, c->wechat.wechatpay_public_key))
        config_problem(l, "wechat", "wechatpay_public_key",
                       "'%s' is your merchant key's public half, not WeChat Pay's public key "
                       "(download pub_key.pem from the merchant platform)", file);
done:
    buf_free(&why);
}

static void load_wechat_v3_keys(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    crypto_key_t *cert_key = NULL;
    buf_t why;

    buf_init(&why, NULL);
    if (crypto_key_load_private(c->wechat.client_key, &c->wechat.mch_key, &why) != PG_OK)
        config_problem(l, "wechat", "client_key", "'%s' holds no usable RSA private key: %s",
                       c->wechat.client_key, why.data);
    buf_clear(&why);
    if (crypto_key_load_public(c->wechat.client_cert, &cert_key, &why) == PG_OK && c->wechat.mch_key &&
        !crypto_key_pair_matches(c->wechat.mch_key, cert_key))
        config_problem(l, "wechat", "client_key", "'%s' is not the key of client_cert '%s'",
                       c->wechat.client_key, c->wechat.client_cert);
    load_wechat_serial(l);
    if (is_set(c->wechat.wechatpay_public_key_file))
        load_wechatpay_public_key(l);
    crypto_key_free(cert_key);
    buf_free(&why);
}

static void validate_wechat_v3(config_loader_t *l, bool load_keys)
{
    pg_config_t *c = l->cfg;
    int before = l->problems;
    bool pubkey = is_set(c->wechat.wechatpay_public_key_file), pubkey_id = is_set(c->wechat.wechatpay_public_key_id);

    if (!wechat_v3_given(c))
        return;
    require(l, "wechat", "api_v3_key", c->wechat.api_v3_key);
    if (is_set(c->wechat.api_v3_key) && strlen(c->wechat.api_v3_key) != 32)
        config_problem(l, "wechat", "api_v3_key", "must be exactly 32 bytes");
    require(l, "wechat", "client_cert", c->wechat.client_cert);
    require(l, "wechat", "client_key", c->wechat.client_key);
    if (pubkey != pubkey_id)
        config_problem(l, "wechat", pubkey ? "wechatpay_public_key_id" : "wechatpay_public_key",
                       "missing (public-key mode needs wechatpay_public_key and wechatpay_public_key_id)");
    if (!pubkey && !pubkey_id && !is_set(c->wechat.platform_cert_dir))
        config_problem(l, "wechat", "wechatpay_public_key",
                       "missing: v3 verifies WeChat Pay's signatures with wechatpay_public_key + "
                       "wechatpay_public_key_id (public-key mode) or platform_cert_dir (platform certificates)");
    if (pubkey_id && !is_pub_key_id(c->wechat.wechatpay_public_key_id))
        config_problem(l, "wechat", "wechatpay_public_key_id", "'%s' does not look like PUB_KEY_ID_...",
                       c->wechat.wechatpay_public_key_id);
    check_readable(l, "wechat", "wechatpay_public_key", c->wechat.wechatpay_public_key_file);
    if (is_set(c->wechat.platform_cert_dir))
        check_dir(l, "platform_cert_dir", c->wechat.platform_cert_dir);
    if (load_keys && l->problems == before && is_set(c->wechat.client_cert) && is_set(c->wechat.client_key) &&
        access(c->wechat.client_cert, R_OK) == 0 && access(c->wechat.client_key, R_OK) == 0)
        load_wechat_v3_keys(l);
}

static void validate_wechat(config_loader_t *l, bool load_keys)
{
    pg_config_t *c = l->cfg;
    if (!c->wechat.enabled)
        return;
    require(l, "wechat", "appid", c->wechat.appid);
    require(l, "wechat", "mch_id", c->wechat.mch_id);
    /* The v2 key is needed while v2 payments are made; a v3-only merchant has none. */
    if (!c->wechat.api_v3)
        require(l, "wechat", "api_key", c->wechat.api_key);
    if (is_set(c->wechat.api_key) && strlen(c->wechat.api_key) != 32)
        config_problem(l, "wechat", "api_key", "must be exactly 32 characters");
    validate_url(l, "wechat", "gateway", c->wechat.gateway);
    validate_url(l, "wechat", "mp_api_base", c->wechat.mp_api_base);
    check_readable(l, "wechat", "client_cert", c->wechat.client_cert);
    check_readable(l, "wechat", "client_key", c->wechat.client_key);
    check_readable(l, "wechat", "ca_file", c->wechat.ca_file);
    if (c->server.order_ttl < WECHAT_MIN_CLOSE_AGE_S)
        config_problem(l, "server", "order_ttl",
                       "must be at least %d seconds when WeChat is enabled: WeChat does not close an order "
                       "within 5 minutes of creating it", WECHAT_MIN_CLOSE_AGE_S);
    validate_wechat_v3(l, load_keys);
}

static void validate_stripe(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    if (!c->stripe.enabled)
        return;
    require(l, "stripe", "secret_key", c->stripe.secret_key);
    require(l, "stripe", "webhook_secret", c->stripe.webhook_secret);
    if (is_set(c->stripe.secret_key) && strncmp(c->stripe.secret_key, "sk_", 3) &&
        strncmp(c->stripe.secret_key, "rk_", 3))
        config_problem(l, "stripe", "secret_key", "must be a secret (sk_...) or restricted (rk_...) key");
    if (is_set(c->stripe.webhook_secret) && strncmp(c->stripe.webhook_secret, "whsec_", 6))
        config_problem(l, "stripe", "webhook_secret", "must be the endpoint's signing secret (whsec_...)");
    validate_url(l, "stripe", "api_base", c->stripe.api_base);
    if (!stripe_currency_valid(c->stripe.currency))
        config_problem(l, "stripe", "currency", "must be a lowercase three-letter ISO code (e.g. cny, usd)");
    if (c->stripe.fee_rate_bp > 10000)
        config_problem(l, "stripe", "fee_rate_bp", "must be at most 10000");
    check_readable(l, "stripe", "ca_file", c->stripe.ca_file);
}

static void validate_money(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    if (c->fees.alipay_rate_bp > 10000)
        config_problem(l, "fees", "alipay_rate_bp", "must be at most 10000");
    if (c->fees.wechat_rate_bp > 10000)
        config_problem(l, "fees", "wechat_rate_bp", "must be at most 10000");
    if (c->settlement.platform_commission_bp > 10000)
        config_problem(l, "settlement", "platform_commission_bp", "must be at most 10000");
    if (c->settlement.delay_days > 365)
        config_problem(l, "settlement", "delay_days", "must be at most 365");
    validate_url(l, "merchant", "webhook_url", c->merchant.webhook_url);
    validate_url(l, "merchant", "return_url", c->merchant.return_url);
    validate_url(l, "demo", "appstore_phone", c->demo.appstore_phone);
    validate_url(l, "demo", "googleplay_phone", c->demo.googleplay_phone);
    if (is_set(c->merchant.webhook_url) && !is_set(c->merchant.webhook_secret))
        config_problem(l, "merchant", "webhook_secret", "missing (required when webhook_url is set)");
}

static void validate_metrics(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    buf_t why;
    buf_init(&why, NULL);
    if (is_set(c->metrics.allow) && metrics_allow_check(c->metrics.allow, &why) != PG_OK)
        config_problem(l, "metrics", "allow", "%s", why.data);
    if (is_set(c->metrics.token) && strlen(c->metrics.token) < 16)
        config_problem(l, "metrics", "token", "too short: use at least 16 random characters");
    buf_free(&why);
}

static bool payout_date_valid(const char *ymd)
{
    char same[LEDGER_DATE_SZ];
    return strlen(ymd) == 10 && ledger_date_add_days(ymd, 0, same) == PG_OK && !strcmp(same, ymd);
}

/* [payouts] channel = wechat without [wechat] app_secret: transfers are
 * made, but the payee's confirmation page cannot run wx.config, so nobody
 * can confirm them in WeChat (a warning: the operator may be adding it). */
static char *config_warning_text(const char *cfgpath)
{
    buf_t b;
    char *out;
    buf_init(&b, NULL);
    buf_printf(&b, "%s: warning: [wechat] app_secret: missing: [payouts] channel = wechat, but the payees' "
               "confirmation page cannot run the JS-SDK's wx.config without the Official Account's AppSecret "
               "(jsapi_ticket), so payees cannot confirm transfers in WeChat\n", cfgpath);
    out = b.data ? strdup(b.data) : NULL;
    buf_free(&b);
    return out;
}

static void validate_payouts(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    if (!c->payouts.enabled)
        return;
    if (c->payouts.min_fen < 1)
        config_problem(l, "payouts", "min_fen", "must be at least 1");
    /* Required: on the day payouts are switched on, older batches may already
     * have been paid by hand from the payout CSV; paying them again by
     * transfer would pay the creator twice. */
    if (!is_set(c->payouts.start_date))
        config_problem(l, "payouts", "start_date", "required: the first settlement day paid by transfer "
                       "(batches before it were paid by hand from the payout CSV and are never paid again)");
    else if (!payout_date_valid(c->payouts.start_date))
        config_problem(l, "payouts", "start_date", "'%s' is not a date YYYY-MM-DD", c->payouts.start_date);
    if (!strcmp(c->payouts.channel, "wechat")) {
        /* merchant transfers exist only in API v3 (its keys are validated with [wechat]) */
        if (!c->wechat.enabled || !c->wechat.api_v3)
            config_problem(l, "payouts", "channel", "wechat merchant transfers need [wechat] enabled with "
                           "api_version = v3 (api_v3_key, the merchant key and WeChat Pay's public key or "
                           "platform certificates)");
        if (!is_set(c->wechat.app_secret) && c->wechat.warnings == NULL)
            c->wechat.warnings = config_warning_text(c->path);
    } else if (!c->alipay.enabled || !c->alipay.cert_mode)
        config_problem(l, "payouts", "channel", "alipay transfers need [alipay] enabled in certificate mode "
                       "(app_cert, alipay_cert, alipay_root_cert)");
}

static void validate_appstore(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    if (c->appstore.store_fee_bp > 10000)
        config_problem(l, "appstore", "store_fee_bp", "must be at most 10000");
    if (!c->appstore.enabled)
        return;
    require(l, "appstore", "bundle_id", c->appstore.bundle_id);
    require(l, "appstore", "root_cert", c->appstore.root_cert);
    if (strcmp(c->appstore.environment, "Production") && strcmp(c->appstore.environment, "Sandbox"))
        config_problem(l, "appstore", "environment", "'%s' is not one of Production|Sandbox", c->appstore.environment);
    if (is_set(c->appstore.app_apple_id) &&
        !parse_int64(c->appstore.app_apple_id, 1, INT64_C(999999999999), &c->appstore.app_apple_id_num))
        config_problem(l, "appstore", "app_apple_id", "'%s' is not Apple's numeric app id", c->appstore.app_apple_id);
    if (!strcmp(c->appstore.environment, "Production"))
        require(l, "appstore", "app_apple_id", c->appstore.app_apple_id);
    validate_url(l, "appstore", "api_base", c->appstore.api_base);
    check_readable(l, "appstore", "root_cert", c->appstore.root_cert);
    check_readable(l, "appstore", "private_key", c->appstore.private_key);
    check_readable(l, "appstore", "ca_file", c->appstore.ca_file);
    if (is_set(c->appstore.private_key) && (!is_set(c->appstore.issuer_id) || !is_set(c->appstore.key_id)))
        config_problem(l, "appstore", "private_key", "needs issuer_id and key_id (App Store Connect, Keys)");
}

static void validate_googleplay(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    if (c->googleplay.store_fee_bp > 10000)
        config_problem(l, "googleplay", "store_fee_bp", "must be at most 10000");
    if (!c->googleplay.enabled)
        return;
    require(l, "googleplay", "package_name", c->googleplay.package_name);
    require(l, "googleplay", "service_account", c->googleplay.service_account);
    require(l, "googleplay", "push_audience", c->googleplay.push_audience);
    require(l, "googleplay", "push_email", c->googleplay.push_email);
    validate_url(l, "googleplay", "api_base", c->googleplay.api_base);
    validate_url(l, "googleplay", "push_certs_url", c->googleplay.push_certs_url);
    check_readable(l, "googleplay", "service_account", c->googleplay.service_account);
    check_readable(l, "googleplay", "ca_file", c->googleplay.ca_file);
}

pg_err config_load(const char *path, bool load_keys, pg_config_t **out, buf_t *errors)
{
    config_loader_t l;
    int rc;
    memset(&l, 0, sizeof l);
    *out = NULL;
    l.errors = errors;
    l.cfg = calloc(1, sizeof *l.cfg);
    if (!l.cfg)
        return PG_ERR_NOMEM;
    l.cfg->path = strdup(path);
    set_defaults(l.cfg);
    rc = ini_parse(path, config_on_pair, &l);
    if (rc < 0) {
        buf_printf(errors, "%s: cannot read: %s\n", path, strerror(errno ? errno : ENOENT));
        config_free(l.cfg);
        return PG_ERR_CONFIG;
    }
    if (rc > 0) {
        buf_printf(errors, "%s: line %d: not a valid INI line\n", path, rc);
        l.problems++;
    }
    validate_server(&l);
    validate_alipay(&l, load_keys);
    validate_wechat(&l, load_keys);
    validate_stripe(&l);
    validate_money(&l);
    validate_metrics(&l);
    validate_payouts(&l);
    validate_appstore(&l);
    validate_googleplay(&l);
    if (l.problems > 0) {
        config_free(l.cfg);
        return PG_ERR_CONFIG;
    }
    *out = l.cfg;
    return PG_OK;
}

static void free_secret(char *s)
{
    if (s) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

void config_free(pg_config_t *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->server.base_url);
    free(c->server.base_path);
    free_secret(c->server.api_key);
    free_secret(c->server.checkout_secret);
    free(c->server.log_file);
    free(c->server.trusted_proxies_text);
    netaddr_list_free(&c->server.trusted_proxies);
    free(c->database.host);
    free(c->database.socket);
    free(c->database.user);
    free_secret(c->database.password);
    free(c->database.name);
    free(c->alipay.app_id);
    free(c->alipay.gateway);
    free(c->alipay.app_private_key_file);
    free(c->alipay.alipay_public_key_file);
    free(c->alipay.seller_id);
    free(c->alipay.ca_file);
    crypto_key_free(c->alipay.app_private_key);
    crypto_key_free(c->alipay.alipay_public_key);
    free(c->alipay.app_cert_file);
    free(c->alipay.alipay_cert_file);
    free(c->alipay.alipay_root_cert_file);
    free(c->alipay.alipay_root_cert_sn);
    free(c->alipay.warnings);
    free_secret(c->wechat.app_secret);
    free(c->wechat.mp_api_base);
    free(c->wechat.warnings);
    free(c->wechat.appid);
    free(c->wechat.mch_id);
    free_secret(c->wechat.api_key);
    free(c->wechat.sign_type);
    free(c->wechat.gateway);
    free(c->wechat.client_cert);
    free(c->wechat.client_key);
    free(c->wechat.ca_file);
    free_secret(c->wechat.api_v3_key);
    free(c->wechat.mch_serial_no);
    free(c->wechat.wechatpay_public_key_file);
    free(c->wechat.wechatpay_public_key_id);
    free(c->wechat.platform_cert_dir);
    crypto_key_free(c->wechat.mch_key);
    crypto_key_free(c->wechat.wechatpay_public_key);
    free_secret(c->stripe.secret_key);
    free_secret(c->stripe.webhook_secret);
    free(c->stripe.api_base);
    free(c->stripe.currency);
    free(c->stripe.ca_file);
    free(c->merchant.webhook_url);
    free_secret(c->merchant.webhook_secret);
    free(c->merchant.return_url);
    free(c->demo.appstore_phone);
    free(c->demo.googleplay_phone);
    free(c->payouts.channel);
    free(c->payouts.start_date);
    free(c->metrics.state_file);
    free(c->metrics.allow);
    free_secret(c->metrics.token);
    free(c->appstore.bundle_id);
    free(c->appstore.app_apple_id);
    free(c->appstore.environment);
    free(c->appstore.root_cert);
    free(c->appstore.issuer_id);
    free(c->appstore.key_id);
    free(c->appstore.private_key);
    free(c->appstore.api_base);
    free(c->appstore.ca_file);
    free(c->googleplay.package_name);
    free(c->googleplay.service_account);
    free(c->googleplay.api_base);
    free(c->googleplay.push_audience);
    free(c->googleplay.push_email);
    free(c->googleplay.push_certs_url);
    free(c->googleplay.ca_file);
    free(c);
}

const char *config_default_path(const char *from_args)
{
    const char *env;
    if (from_args && *from_args)
        return from_args;
    env = getenv("PAYGATE_CONFIG");
    return env && *env ? env : NULL;
}

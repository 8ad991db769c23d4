/* config: INI loading (inih) and validation. See include/config.h. */
#include "config.h"
#include "metrics.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "wechat.h"

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
    K("wechat", "enabled", CK_BOOL, wechat.enabled, NULL),
    K("wechat", "appid", CK_STR, wechat.appid, NULL),
    K("wechat", "mch_id", CK_STR, wechat.mch_id, NULL),
    K("wechat", "api_key", CK_STR, wechat.api_key, NULL),
    K("wechat", "sign_type", CK_ENUM, wechat.sign_type, "MD5|HMAC-SHA256"),
    K("wechat", "gateway", CK_STR, wechat.gateway, NULL),
    K("wechat", "client_cert", CK_STR, wechat.client_cert, NULL),
    K("wechat", "client_key", CK_STR, wechat.client_key, NULL),
    K("wechat", "ca_file", CK_STR, wechat.ca_file, NULL),
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
        if (!strcmp(k->name, "sign_type")) {
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
    c->fees.alipay_rate_bp = 60;
    c->fees.wechat_rate_bp = 60;
    c->settlement.delayed = true;
    c->settlement.delay_days = 7;
    c->settlement.platform_commission_bp = 3000;
    c->metrics.enabled = true;
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

static void validate_alipay(config_loader_t *l, bool load_keys)
{
    pg_config_t *c = l->cfg;
    if (!c->alipay.enabled)
        return;
    require(l, "alipay", "app_id", c->alipay.app_id);
    require(l, "alipay", "gateway", c->alipay.gateway);
    require(l, "alipay", "app_private_key", c->alipay.app_private_key_file);
    require(l, "alipay", "alipay_public_key", c->alipay.alipay_public_key_file);
    validate_url(l, "alipay", "gateway", c->alipay.gateway);
    check_readable(l, "alipay", "app_private_key", c->alipay.app_private_key_file);
    check_readable(l, "alipay", "alipay_public_key", c->alipay.alipay_public_key_file);
    check_readable(l, "alipay", "ca_file", c->alipay.ca_file);
    if (load_keys && l->problems == 0)
        load_alipay_keys(l);
}

static void validate_wechat(config_loader_t *l)
{
    pg_config_t *c = l->cfg;
    if (!c->wechat.enabled)
        return;
    require(l, "wechat", "appid", c->wechat.appid);
    require(l, "wechat", "mch_id", c->wechat.mch_id);
    require(l, "wechat", "api_key", c->wechat.api_key);
    if (is_set(c->wechat.api_key) && strlen(c->wechat.api_key) != 32)
        config_problem(l, "wechat", "api_key", "must be exactly 32 characters");
    validate_url(l, "wechat", "gateway", c->wechat.gateway);
    check_readable(l, "wechat", "client_cert", c->wechat.client_cert);
    check_readable(l, "wechat", "client_key", c->wechat.client_key);
    check_readable(l, "wechat", "ca_file", c->wechat.ca_file);
    if (c->server.order_ttl < WECHAT_MIN_CLOSE_AGE_S)
        config_problem(l, "server", "order_ttl",
                       "must be at least %d seconds when WeChat is enabled: WeChat does not close an order "
                       "within 5 minutes of creating it", WECHAT_MIN_CLOSE_AGE_S);
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
    validate_wechat(&l);
    validate_money(&l);
    validate_metrics(&l);
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
    free(c->wechat.appid);
    free(c->wechat.mch_id);
    free_secret(c->wechat.api_key);
    free(c->wechat.sign_type);
    free(c->wechat.gateway);
    free(c->wechat.client_cert);
    free(c->wechat.client_key);
    free(c->wechat.ca_file);
    free(c->merchant.webhook_url);
    free_secret(c->merchant.webhook_secret);
    free(c->merchant.return_url);
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

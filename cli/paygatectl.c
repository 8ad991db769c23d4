/* paygatectl: the operator's CLI (SPEC §9). It calls the same library as
 * the FastCGI routes. Exit codes: 0 ok, 1 failure or discrepancy, 2 usage. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin.h"
#include "app.h"
#include "cron.h"
#include "httpc.h"
#include "ledger.h"
#include "lifecycle.h"
#include "reconcile.h"
#include "refund.h"
#include "store_lifecycle.h"
#include "text.h"
#include "webhooks.h"
#include "xml.h"
#include "config.h"
#include "log.h"
#include "migrations.h"
#include "money.h"
#include "store.h"
#include "payout.h"
#include "store_payout.h"
#include "store_admin.h"
#include "crypto.h"
#include "store_iap.h"
#include "iap.h"

#define EXIT_USAGE 2

typedef struct cli {
    const char *config_path;
    bool json;
    pg_app_t *app;
    arena_t arena;
} cli_t;

static int usage(void)
{
    fputs("usage: paygatectl [-c FILE] [--json] COMMAND\n"
          "  migrate                      create or upgrade the schema\n"
          "  check-config                 validate the config file and keys\n"
          "  product add --sku SKU --title TITLE --price-fen N [--creator ID] [--appstore-id ID] [--googleplay-id ID]\n"
          "  product update --sku SKU [--appstore-id ID] [--googleplay-id ID]   ('' clears)\n"
          "  product list\n"
          "  creator add --id ID --name NAME [--alipay-account ACCOUNT --real-name NAME] [--wechat-openid OPENID]\n"
          "  creator update --id ID [--name NAME] [--alipay-account ACCOUNT] [--real-name NAME] [--wechat-openid ID]\n"
          "  payout [--date YYYY-MM-DD]       pay settled batches to the creators (Alipay transfer)\n"
          "  payout list [--status PENDING|WAITING_CONFIRMATION|PAID|FAILED]\n"
          "  payout retry BATCH_NO           send a FAILED payout again (after fixing the account)\n"
          "  creator list\n"
          "  order list [--status S]\n"
          "  order show ORDER_NO\n"
          "  refund ORDER_NO [--amount-fen N] [--reason R] [--request-id ID]\n"
          "  close ORDER_NO\n"
          "  sync                         ask providers about payments and refunds waiting too long\n"
          "  cron                         one pass of every periodic duty (safe to overlap)\n"
          "  webhooks deliver|list [--status S]|retry ID|retry --dead\n"
          "  settle --date YYYY-MM-DD [--out FILE.csv]\n"
          "  report --from YYYY-MM-DD --to YYYY-MM-DD\n"
          "  reconcile --channel alipay|wechat|stripe --date YYYY-MM-DD [--bill FILE]\n"
          "  admin add --user U --role viewer|operator|owner   (password from the terminal or stdin)\n"
          "  admin list\n"
          "  appstore lookup TRANSACTION_ID   ask the App Store Server API and record the purchase\n",
          stderr);
    return EXIT_USAGE;
}

static int open_app(cli_t *c)
{
    buf_t err;
    buf_init(&err, NULL);
    if (app_open(config_default_path(c->config_path), &c->app, &err) != PG_OK) {
        fprintf(stderr, "paygatectl: configuration errors:\n%s", err.data);
        buf_free(&err);
        return 1;
    }
    buf_free(&err);
    if (db_ping(c->app->db) != PG_OK) {
        fprintf(stderr, "paygatectl: cannot reach the database: %s\n", db_last_error(c->app->db));
        return 1;
    }
    return 0;
}

/* Rows as a JSON array of objects (values as strings, SQL NULL as null). */
static json_t *result_json(const db_result_t *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->rows; i++) {
        json_t *obj = json_object();
        for (size_t k = 0; k < r->cols; k++) {
            const char *v = r->cells[i * r->cols + k];
            json_object_set_new(obj, r->names[k], v ? json_string(v) : json_null());
        }
        json_array_append_new(arr, obj);
    }
    return arr;
}

/* A result as an aligned table, or as a JSON array of objects. */
static void print_result(const cli_t *c, const db_result_t *r)
{
    size_t width[32] = { 0 };
    if (c->json) {
        json_t *arr = result_json(r);
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
        return;
    }
    for (size_t k = 0; k < r->cols && k < 32; k++) {
        width[k] = strlen(r->names[k]);
        for (size_t i = 0; i < r->rows; i++) {
            const char *v = r->cells[i * r->cols + k];
            size_t n = strlen(v ? v : "-");
            if (n > width[k])
                width[k] = n;
        }
    }
    for (size_t k = 0; k < r->cols && k < 32; k++)
        printf("%-*s%s", (int)width[k], r->names[k], k + 1 < r->cols ? "  " : "\n");
    for (size_t i = 0; i < r->rows; i++) {
        for (size_t k = 0; k < r->cols && k < 32; k++) {
            const char *v = r->cells[i * r->cols + k];
            printf("%-*s%s", (int)width[k], v ? v : "-", k + 1 < r->cols ? "  " : "\n");
        }
    }
    if (!c->json)
        printf("(%zu row%s)\n", r->rows, r->rows == 1 ? "" : "s");
}

static int cmd_migrate(cli_t *c)
{
    unsigned applied = 0;
    buf_t log;
    pg_err rc;
    if (open_app(c))
        return 1;
    buf_init(&log, NULL);
    rc = migrations_apply(c->app->db, &applied, &log);
    fputs(log.data, stdout);
    buf_free(&log);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: migrate failed: %s\n", db_last_error(c->app->db));
        return 1;
    }
    printf("schema up to date (%u migration%s applied now, %u known)\n", applied,
           applied == 1 ? "" : "s", MIGRATION_COUNT);
    return 0;
}

/* The app stores' files parse: Apple's root, the .p8 key, Google's service account. */
static int check_store_keys(const pg_config_t *cfg, buf_t *err)
{
    int bad = 0;
    if (cfg->appstore.enabled) {
        appstore_verifier_t *v = NULL;
        pki_privkey_t *k = NULL;
        buf_clear(err);
        if (appstore_verifier_load(cfg->appstore.root_cert, &v, err) != PG_OK) {
            fprintf(stderr, "%s: [appstore] root_cert: %s\n", cfg->path, err->data);
            bad = 1;
        }
        buf_clear(err);
        if (cfg->appstore.private_key && *cfg->appstore.private_key &&
            pki_privkey_load(cfg->appstore.private_key, &k, err) != PG_OK) {
            fprintf(stderr, "%s: [appstore] private_key: %s\n", cfg->path, err->data);
            bad = 1;
        }
        appstore_verifier_free(v);
        pki_privkey_free(k);
        printf("  appstore  %s, %s, root %s%s\n", cfg->appstore.bundle_id, cfg->appstore.environment,
               cfg->appstore.root_cert, k || !cfg->appstore.private_key ? "" : ", API key unusable");
    }
    if (cfg->googleplay.enabled) {
        googleplay_client_t g;
        memset(&g, 0, sizeof g);
        buf_clear(err);
        if (googleplay_load_service_account(&g, cfg->googleplay.service_account, err) != PG_OK) {
            fprintf(stderr, "%s: [googleplay] service_account: %s\n", cfg->path, err->data);
            bad = 1;
        }
        printf("  googleplay %s, service account %s\n", cfg->googleplay.package_name,
               g.client_email ? g.client_email : "unusable");
        googleplay_client_free(&g);
    }
    return bad;
}

static int cmd_check_config(cli_t *c)
{
    const char *path = config_default_path(c->config_path);
    pg_config_t *cfg = NULL;
    buf_t err;
    if (!path) {
        fprintf(stderr, "paygatectl: no config file: pass -c FILE or set PAYGATE_CONFIG\n");
        return EXIT_USAGE;
    }
    buf_init(&err, NULL);
    if (config_load(path, true, &cfg, &err) != PG_OK) {
        fputs(err.data, stderr);
        buf_free(&err);
        return 1;
    }
    printf("%s: OK\n", path);
    printf("  base_url  %s\n", cfg->server.base_url);
    printf("  database  %s@%s:%d/%s\n", cfg->database.user,
           cfg->database.socket && *cfg->database.socket ? cfg->database.socket : cfg->database.host,
           cfg->database.port, cfg->database.name);
    if (cfg->alipay.enabled && cfg->alipay.cert_mode)
        printf("  alipay    app_id %s, certificate mode: app_cert_sn %s, alipay_cert_sn %s, "
               "alipay_root_cert_sn %s (app key matches app_cert, alipay_cert under the root: OK)\n",
               cfg->alipay.app_id, cfg->alipay.app_cert_sn, cfg->alipay.alipay_cert_sn,
               cfg->alipay.alipay_root_cert_sn);
    else if (cfg->alipay.enabled)
        printf("  alipay    app_id %s, app private key %s, Alipay public key %s (a different key pair: OK)\n",
               cfg->alipay.app_id, cfg->alipay.app_private_key_file, cfg->alipay.alipay_public_key_file);
    else
        printf("  alipay    disabled\n");
    printf("  wechat    %s\n", cfg->wechat.enabled ? "enabled (not available in this build yet)" : "disabled");
    if (cfg->alipay.warnings)
        fputs(cfg->alipay.warnings, stderr);
    if (cfg->wechat.warnings)
        fputs(cfg->wechat.warnings, stderr);
    if (cfg->wechat.enabled && cfg->wechat.mch_key != NULL)
        printf("  wechat v3 %s; merchant certificate serial %s (key pair: OK); %s%s%s%s\n",
               cfg->wechat.api_v3 ? "new payments use v3" : "keys checked, new payments still use v2",
               cfg->wechat.mch_serial_no,
               cfg->wechat.wechatpay_public_key ? "WeChat Pay public key " : "",
               cfg->wechat.wechatpay_public_key ? cfg->wechat.wechatpay_public_key_id : "",
               cfg->wechat.wechatpay_public_key && cfg->wechat.platform_cert_dir ? "; " : "",
               cfg->wechat.platform_cert_dir ? "platform certificates in platform_cert_dir" : "");
    int rc = check_store_keys(cfg, &err);
    buf_free(&err);
    config_free(cfg);
    return rc;
}

typedef struct cli_opts {
    const char *sku, *title, *price_fen, *creator, *id, *name, *status, *amount_fen, *reason, *request_id;
    const char *date, *from, *to, *out, *channel, *bill;
    const char *alipay_account, *real_name, *wechat_openid;   /* creator payout accounts */
    const char *user, *role;                                  /* admin accounts */
    const char *appstore_id, *googleplay_id;   /* store product ids (in-app purchases) */
    bool dead;
} cli_opts_t;

static int parse_opts(int argc, char **argv, cli_opts_t *o)
{
    static const struct option longopts[] = {
        { "sku", required_argument, NULL, 's' },    { "title", required_argument, NULL, 't' },
        { "price-fen", required_argument, NULL, 'p' }, { "creator", required_argument, NULL, 'c' },
        { "id", required_argument, NULL, 'i' },     { "name", required_argument, NULL, 'n' },
        { "status", required_argument, NULL, 'S' }, { "amount-fen", required_argument, NULL, 'a' },
        { "reason", required_argument, NULL, 'r' }, { "request-id", required_argument, NULL, 'q' },
        { "dead", no_argument, NULL, 'd' },         { "date", required_argument, NULL, 'D' },
        { "from", required_argument, NULL, 'F' },   { "to", required_argument, NULL, 'T' },
        { "out", required_argument, NULL, 'o' },    { "channel", required_argument, NULL, 'C' },
        { "bill", required_argument, NULL, 'b' },
        { "alipay-account", required_argument, NULL, 'A' }, { "real-name", required_argument, NULL, 'R' },
        { "wechat-openid", required_argument, NULL, 'W' },
        { "user", required_argument, NULL, 'u' },   { "role", required_argument, NULL, 'L' },
        { "appstore-id", required_argument, NULL, 'I' },
        { "googleplay-id", required_argument, NULL, 'G' }, { "play-id", required_argument, NULL, 'G' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    memset(o, 0, sizeof *o);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': o->sku = optarg; break;
        case 't': o->title = optarg; break;
        case 'p': o->price_fen = optarg; break;
        case 'c': o->creator = optarg; break;
        case 'i': o->id = optarg; break;
        case 'n': o->name = optarg; break;
        case 'S': o->status = optarg; break;
        case 'a': o->amount_fen = optarg; break;
        case 'r': o->reason = optarg; break;
        case 'q': o->request_id = optarg; break;
        case 'd': o->dead = true; break;
        case 'D': o->date = optarg; break;
        case 'F': o->from = optarg; break;
        case 'T': o->to = optarg; break;
        case 'o': o->out = optarg; break;
        case 'C': o->channel = optarg; break;
        case 'b': o->bill = optarg; break;
        case 'A': o->alipay_account = optarg; break;
        case 'R': o->real_name = optarg; break;
        case 'W': o->wechat_openid = optarg; break;
        case 'u': o->user = optarg; break;
        case 'L': o->role = optarg; break;
        case 'I': o->appstore_id = optarg; break;
        case 'G': o->googleplay_id = optarg; break;
        default: return -1;
        }
    }
    return optind;
}

static int report_store_error(cli_t *c, pg_err rc, const char *what)
{
    if (rc == PG_ERR_CONFLICT)
        fprintf(stderr, "paygatectl: %s already exists\n", what);
    else
        fprintf(stderr, "paygatectl: %s failed: %s\n", what, db_last_error(c->app->db));
    return 1;
}

static bool store_id_ok(const char *id)
{
    return !id || !*id || text_is_token(id, 255, "_.-");
}

/* --appstore-id / --googleplay-id of product add and update. */
static int product_store_ids(cli_t *c, const cli_opts_t *o)
{
    static const char *const channels[] = { "appstore", "googleplay" };
    const char *ids[] = { o->appstore_id, o->googleplay_id };
    for (size_t i = 0; i < 2; i++) {
        if (!ids[i])
            continue;
        pg_err rc = store_product_set_store_id(c->app->db, o->sku, channels[i], ids[i]);
        if (rc == PG_ERR_NOT_FOUND) {
            fprintf(stderr, "paygatectl: no product with sku '%s'\n", o->sku);
            return 1;
        }
        if (rc != PG_OK)
            return report_store_error(c, rc, rc == PG_ERR_CONFLICT ? "that store product id" : "product");
        printf("product %s: %s id %s\n", o->sku, channels[i], *ids[i] ? ids[i] : "(cleared)");
    }
    return 0;
}

static int cmd_product_update(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    if (parse_opts(argc, argv, &o) < 0)
        return usage();
    if (!text_is_token(o.sku, 64, "_.-") || (!o.appstore_id && !o.googleplay_id) || !store_id_ok(o.appstore_id) ||
        !store_id_ok(o.googleplay_id)) {
        fprintf(stderr, "paygatectl: product update needs --sku and --appstore-id and/or --googleplay-id "
                        "(1-255 of [A-Za-z0-9_.-], '' clears)\n");
        return EXIT_USAGE;
    }
    if (open_app(c))
        return 1;
    return product_store_ids(c, &o);
}

static int cmd_product(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    db_result_t r;
    int64_t price = 0;
    pg_err rc;
    if (argc < 1)
        return usage();
    if (!strcmp(argv[0], "list")) {
        if (open_app(c))
            return 1;
        rc = store_product_list(c->app->db, &c->arena, false, &r);
        if (rc != PG_OK)
            return report_store_error(c, rc, "product list");
        print_result(c, &r);
        return 0;
    }
    if (!strcmp(argv[0], "update"))
        return cmd_product_update(c, argc, argv);
    if (strcmp(argv[0], "add") || parse_opts(argc, argv, &o) < 0)
        return usage();
    if (!store_id_ok(o.appstore_id) || !store_id_ok(o.googleplay_id)) {
        fprintf(stderr, "paygatectl: store product ids are 1-255 of [A-Za-z0-9_.-]\n");
        return EXIT_USAGE;
    }
    if (!text_is_token(o.sku, 64, "_.-") || !o.title || !*o.title || strlen(o.title) > 200 || !o.price_fen) {
        fprintf(stderr, "paygatectl: product add needs --sku (1-64 of [A-Za-z0-9_.-]), --title (1-200 chars) and --price-fen\n");
        return EXIT_USAGE;
    }
    if (money_parse_fen(o.price_fen, MONEY_MAX_FEN, &price) != PG_OK || price <= 0) {
        fprintf(stderr, "paygatectl: --price-fen must be a whole number of fen, 1..%lld\n", (long long)MONEY_MAX_FEN);
        return EXIT_USAGE;
    }
    if (open_app(c))
        return 1;
    rc = store_product_add(c->app->db, o.sku, o.title, price, o.creator);
    if (rc != PG_OK) {
        if (rc == PG_ERR_DB && o.creator && db_last_errno(c->app->db) == 1452) {
            fprintf(stderr, "paygatectl: no creator with id '%s' (add it with: creator add)\n", o.creator);
            return 1;
        }
        return report_store_error(c, rc, "product");
    }
    printf("product %s added (%lld fen)\n", o.sku, (long long)price);
    return product_store_ids(c, &o);
}

/* appstore lookup TRANSACTION_ID: a purchase Apple has and we may not
 * (a notification lost for good), recorded like a notified one. */
static int cmd_appstore(cli_t *c, int argc, char **argv)
{
    iap_result_t r;
    buf_t msg;
    if (argc != 2 || strcmp(argv[0], "lookup"))
        return usage();
    if (open_app(c))
        return 1;
    buf_init(&msg, &c->arena);
    pg_err rc = iap_appstore_lookup(c->app, &c->arena, NULL, argv[1], &r, &msg);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: appstore lookup %s: %s\n", argv[1], msg.len ? msg.data : pg_err_name(rc));
        return 1;
    }
    printf("transaction %s: %s%s%s (%s)\n", argv[1], r.outcome, r.order_no ? ", order " : "",
           r.order_no ? r.order_no : "", r.detail ? r.detail : "");
    return 0;
}

/* Payout account options: an Alipay account (logon id: email or phone, or a
 * 2088 user id) up to 100 printable characters; a logon id needs the real
 * name. The values are never printed back whole. */
static int check_payout_opts(const cli_opts_t *o)
{
    const char *acct = o->alipay_account;
    bool user_id = acct && strlen(acct) == 16 && !strncmp(acct, "2088", 4) && strspn(acct, "0123456789") == 16;
    if (acct && *acct && (strlen(acct) > 100 || !text_is_token(acct, 100, "@._+-"))) {
        fprintf(stderr, "paygatectl: --alipay-account must be an email, phone number or 2088 user id\n");
        return EXIT_USAGE;
    }
    if (acct && *acct && !user_id && !(o->real_name && *o->real_name)) {
        fprintf(stderr, "paygatectl: --alipay-account with a logon id (email/phone) needs --real-name\n");
        return EXIT_USAGE;
    }
    if ((o->real_name && strlen(o->real_name) > 100) ||
        (o->wechat_openid && *o->wechat_openid && !text_is_token(o->wechat_openid, 64, "_-"))) {
        fprintf(stderr, "paygatectl: --real-name is at most 100 characters, --wechat-openid 1-64 of [A-Za-z0-9_-]\n");
        return EXIT_USAGE;
    }
    return 0;
}

static bool has_payout_opts(const cli_opts_t *o)
{
    return o->alipay_account || o->real_name || o->wechat_openid;
}

static int cmd_creator(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    db_result_t r;
    bool update;
    pg_err rc;
    if (argc < 1)
        return usage();
    if (!strcmp(argv[0], "list")) {
        if (open_app(c))
            return 1;
        rc = store_creator_list_masked(c->app->db, &c->arena, &r);
        if (rc != PG_OK)
            return report_store_error(c, rc, "creator list");
        print_result(c, &r);
        return 0;
    }
    update = !strcmp(argv[0], "update");
    if ((strcmp(argv[0], "add") && !update) || parse_opts(argc, argv, &o) < 0)
        return usage();
    if (!store_id_ok(o.appstore_id) || !store_id_ok(o.googleplay_id)) {
        fprintf(stderr, "paygatectl: store product ids are 1-255 of [A-Za-z0-9_.-]\n");
        return EXIT_USAGE;
    }
    if (o.id && strlen(o.id) > STORE_CREATOR_ID_MAX) {   /* its ledger accounts would not fit */
        fprintf(stderr, "paygatectl: --id is %zu characters long; a creator id is at most %d characters"
                " (the ledger's account names are built from it)\n", strlen(o.id), STORE_CREATOR_ID_MAX);
        return EXIT_USAGE;
    }
    if (!text_is_token(o.id, STORE_CREATOR_ID_MAX, "_.-") || (!update && (!o.name || !*o.name)) ||
        (o.name && (!*o.name || strlen(o.name) > 200))) {
        fprintf(stderr, "paygatectl: creator %s needs --id (1-%d of [A-Za-z0-9_.-])%s\n", argv[0],
                STORE_CREATOR_ID_MAX, update ? "" : " and --name (1-200 chars)");
        return EXIT_USAGE;
    }
    if (check_payout_opts(&o))
        return EXIT_USAGE;
    if (open_app(c))
        return 1;
    rc = update ? PG_OK : store_creator_add(c->app->db, o.id, o.name);
    if (rc == PG_OK && (update || has_payout_opts(&o)))
        rc = store_creator_update(c->app->db, o.id, update ? o.name : NULL, o.alipay_account, o.real_name,
                                  o.wechat_openid);
    if (rc == PG_ERR_NOT_FOUND) {
        fprintf(stderr, "paygatectl: no creator with id '%s'\n", o.id);
        return 1;
    }
    if (rc != PG_OK)
        return report_store_error(c, rc, "creator");
    printf("creator %s %s%s\n", o.id, update ? "updated" : "added",
           o.alipay_account && *o.alipay_account ? " (Alipay payout account set)" : "");
    return 0;
}

/* payout [--date D] | payout list [--status S] | payout retry BATCH */
static int cmd_payout(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    db_result_t r;
    payout_run_t run;
    buf_t msg;
    char yuan[MONEY_YUAN_BUFSZ];
    pg_err rc;
    if (argc >= 1 && !strcmp(argv[0], "list")) {
        if (parse_opts(argc, argv, &o) < 0)
            return usage();
        if (o.status && strcmp(o.status, "PENDING") && strcmp(o.status, "WAITING_CONFIRMATION") &&
            strcmp(o.status, "PAID") && strcmp(o.status, "FAILED"))
            return usage();
        if (open_app(c))
            return 1;
        rc = payout_list(c->app, &c->arena, o.status, &r);
        if (rc != PG_OK)
            return report_store_error(c, rc, "payout list");
        print_result(c, &r);
        return 0;
    }
    if (argc >= 1 && !strcmp(argv[0], "retry")) {
        if (argc != 2 || !text_is_token(argv[1], 48, "_-"))
            return usage();
        if (open_app(c))
            return 1;
        rc = payout_retry(c->app, argv[1]);
        if (rc == PG_ERR_NOT_FOUND) {
            fprintf(stderr, "paygatectl: %s is not a FAILED payout\n", argv[1]);
            return 1;
        }
        if (rc != PG_OK)
            return report_store_error(c, rc, "payout retry");
        printf("payout %s is PENDING again: the next payout run sends it\n", argv[1]);
        return 0;
    }
    if (parse_opts(argc + 1, argv - 1, &o) < 0)
        return usage();
    if (open_app(c))
        return 1;
    buf_init(&msg, &c->arena);
    rc = payout_run(c->app, &c->arena, o.date, &run, &msg);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: payout failed: %s\n", msg.len ? msg.data : db_last_error(c->app->db));
        return 1;
    }
    money_format_yuan(run.paid_fen, yuan);
    if (c->json)
        printf("{\"created\":%u,\"paid\":%u,\"paid_fen\":%lld,\"failed\":%u,\"pending\":%u,\"skipped\":%u,"
               "\"waiting_for_account\":%u,\"unsendable\":%u}\n", run.created, run.paid, (long long)run.paid_fen,
               run.failed, run.pending, run.skipped, run.waiting, run.unsendable);
    else
        printf("payouts: %u paid (%s yuan), %u failed, %u pending, %u held by another run, "
               "%u batch(es) waiting for a payout account, %u of a channel this configuration cannot send\n",
               run.paid, yuan, run.failed, run.pending, run.skipped, run.waiting, run.unsendable);
    return 0;
}

static int order_show(cli_t *c, const char *order_no)
{
    order_view_t o;
    db_result_t payments;
    pg_err rc = store_order_by_no(c->app->db, &c->arena, order_no, &o);
    if (rc == PG_ERR_NOT_FOUND) {
        fprintf(stderr, "paygatectl: no order %s\n", order_no);
        return 1;
    }
    db_result_t refunds;
    if (rc == PG_OK)
        rc = store_order_payments(c->app->db, &c->arena, o.id, &payments);
    if (rc == PG_OK)
        rc = store_order_refunds(c->app->db, &c->arena, o.id, &refunds);
    if (rc != PG_OK)
        return report_store_error(c, rc, "order show");
    if (c->json) {
        json_t *obj = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:s?}", "order_no", o.order_no, "status", o.status,
                                "amount_fen", (json_int_t)o.amount_fen, "refunded_fen", (json_int_t)o.refunded_fen,
                                "product", o.product_sku, "user", o.user_ref, "created_at", o.created_at,
                                "paid_at", o.paid_at);
        json_object_set_new(obj, "payments", result_json(&payments));
        json_object_set_new(obj, "refunds", result_json(&refunds));
        json_dumpf(obj, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(obj);
        return 0;
    }
    {
        char yuan[MONEY_YUAN_BUFSZ];
        money_format_yuan(o.amount_fen, yuan);
        printf("order       %s\nstatus      %s\namount      %s (%lld fen)\nrefunded    %lld fen\n"
               "product     %s (%s)\nuser        %s\ncreated_at  %s\npaid_at     %s\n\npayments:\n",
               o.order_no, o.status, yuan, (long long)o.amount_fen, (long long)o.refunded_fen, o.product_sku,
               o.product_title, o.user_ref, o.created_at, o.paid_at ? o.paid_at : "-");
    }
    print_result(c, &payments);
    printf("\nrefunds:\n");
    print_result(c, &refunds);
    for (size_t i = 0; i < refunds.rows; i++) {
        if (!strcmp(db_cell(&refunds, i, "status"), "ABNORMAL"))
            printf("\nattention: refund %s is ABNORMAL at the provider (the money left your account but did not "
                   "reach the buyer): handle it by hand in the merchant platform; its amount stays reserved\n",
                   db_cell(&refunds, i, "refund_no"));
    }
    return 0;
}

static int cmd_order(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    db_result_t r;
    int next;
    pg_err rc;
    if (argc < 1)
        return usage();
    next = parse_opts(argc, argv, &o);
    if (next < 0)
        return usage();
    if (!strcmp(argv[0], "show")) {
        if (next >= argc)
            return usage();
        if (open_app(c))
            return 1;
        return order_show(c, argv[next]);
    }
    if (strcmp(argv[0], "list"))
        return usage();
    if (o.status && strcmp(o.status, "CREATED") && strcmp(o.status, "PAID") && strcmp(o.status, "CLOSED") &&
        strcmp(o.status, "PARTIALLY_REFUNDED") && strcmp(o.status, "REFUNDED")) {
        fprintf(stderr, "paygatectl: --status must be CREATED, PAID, PARTIALLY_REFUNDED, REFUNDED or CLOSED\n");
        return EXIT_USAGE;
    }
    if (open_app(c))
        return 1;
    rc = store_order_list(c->app->db, &c->arena, o.status, &r);
    if (rc != PG_OK)
        return report_store_error(c, rc, "order list");
    print_result(c, &r);
    return 0;
}

static int cmd_refund(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    refund_request_t rq;
    refund_result_t rr;
    buf_t msg;
    /* argv[-1] is "refund": getopt skips it and gathers ORDER_NO at the end. */
    int next = parse_opts(argc + 1, argv - 1, &o);
    pg_err rc;
    if (next < 0 || next != argc)
        return usage();
    if (open_app(c))
        return 1;
    memset(&rq, 0, sizeof rq);
    rq.order_no = (argv - 1)[next];
    rq.amount_fen = o.amount_fen;
    rq.reason = o.reason;
    rq.request_id = o.request_id;
    buf_init(&msg, &c->arena);
    /* outcome_unknown (COMMIT reply lost, not resolved): the message names the refund_no to look up. */
    rc = refund_create(c->app, &c->arena, &rq, &rr, &msg);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: refund refused (%s): %s\n", rr.error_code ? rr.error_code : pg_err_name(rc),
                msg.len ? msg.data : pg_err_name(rc));
        return rc == PG_ERR_BAD_INPUT ? EXIT_USAGE : 1;
    }
    if (c->json)
        printf("{\"refund_no\":\"%s\",\"status\":\"%s\",\"amount_fen\":%lld}\n", rr.refund_no, rr.status,
               (long long)rr.amount_fen);
    else
        printf("refund %s: %s, %lld fen\n", rr.refund_no, rr.status, (long long)rr.amount_fen);
    return strcmp(rr.status, "FAILED") ? 0 : 1;
}

static int cmd_close(cli_t *c, int argc, char **argv)
{
    const char *code = NULL;
    int retry_after_s = 0;
    buf_t msg;
    pg_err rc;
    if (argc != 1)
        return usage();
    if (open_app(c))
        return 1;
    buf_init(&msg, &c->arena);
    rc = lifecycle_close_order(c->app, &c->arena, argv[0], &code, &retry_after_s, &msg);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: close failed (%s): %s\n", code ? code : pg_err_name(rc), msg.data);
        return 1;
    }
    printf("order %s closed\n", argv[0]);
    return 0;
}

static void print_cron_report(const cli_t *c, const cron_report_t *r, bool with_expiry)
{
    if (c->json) {
        printf("{\"skipped\":%s,\"lease_lost\":%s,\"expired_closed\":%u,\"orders_closed\":%u,\"synced_paid\":%u,"
               "\"synced_closed\":%u,\"queries_failed\":%u,\"refunds_examined\":%u,\"refunds_open\":%u,"
               "\"webhooks_delivered\":%u,\"webhooks_failed\":%u,\"webhooks_dead\":%u,\"daily_done\":%s,"
               "\"settled_batches\":%u,\"recon_unexplained\":%u}\n",
               r->skipped ? "true" : "false", r->lease_lost ? "true" : "false", r->expired.closed, r->expired.orders_closed, r->synced.paid,
               r->synced.closed, r->synced.failed + r->expired.failed, r->refunds_examined, r->refunds_open,
               r->webhooks.delivered, r->webhooks.failed, r->webhooks.dead, r->daily_done ? "true" : "false",
               r->settled_batches, r->recon_unexplained);
        return;
    }
    if (r->skipped) {
        printf("another cron pass is running: nothing done\n");
        return;
    }
    if (with_expiry)
        printf("expiry    %u payment(s) closed, %u order(s) closed, %u failed\n", r->expired.closed,
               r->expired.orders_closed, r->expired.failed);
    printf("sync      %u asked, %u found paid, %u found closed, %u failed\n", r->synced.examined, r->synced.paid,
           r->synced.closed, r->synced.failed);
    printf("refunds   %u examined, %u still pending\n", r->refunds_examined, r->refunds_open);
    if (with_expiry)
        printf("webhooks  %u delivered, %u to retry, %u dead\n", r->webhooks.delivered, r->webhooks.failed,
               r->webhooks.dead);
    if (with_expiry)
        printf("daily     %s: %u settlement batch(es), %u unexplained reconciliation item(s)\n",
               r->daily_done ? "settled and reconciled yesterday" : "not run", r->settled_batches,
               r->recon_unexplained);
}

static int cmd_sync(cli_t *c)
{
    cron_report_t r;
    pg_err rc;
    if (open_app(c))
        return 1;
    memset(&r, 0, sizeof r);
    rc = cron_sync(c->app, &c->arena, CRON_SYNC_AFTER_S, &r);
    print_cron_report(c, &r, false);
    return rc == PG_OK && r.synced.failed == 0 ? 0 : 1;
}

static int cmd_cron(cli_t *c)
{
    cron_report_t r;
    pg_err rc;
    if (open_app(c))
        return 1;
    rc = cron_run(c->app, &c->arena, &r);
    print_cron_report(c, &r, true);
    if (r.lease_lost)
        fprintf(stderr, "paygatectl: cron stopped: its lease was taken over or could not be renewed"
                        " (the next pass does the rest)\n");
    else if (rc != PG_OK)
        fprintf(stderr, "paygatectl: cron failed: %s\n", db_last_error(c->app->db));
    return rc == PG_OK ? 0 : 1;
}

static int cmd_webhooks(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    db_result_t r;
    int next;
    pg_err rc;
    if (argc < 1)
        return usage();
    next = parse_opts(argc, argv, &o);
    if (next < 0)
        return usage();
    if (open_app(c))
        return 1;
    if (!strcmp(argv[0], "deliver")) {
        webhook_stats_t st;
        memset(&st, 0, sizeof st);
        rc = webhooks_deliver(c->app, &c->arena, &st);
        printf("webhooks: %u delivered, %u to retry, %u dead\n", st.delivered, st.failed, st.dead);
        return rc == PG_OK ? 0 : 1;
    }
    if (!strcmp(argv[0], "list")) {
        rc = store_webhooks_list(c->app->db, &c->arena, o.status, &r);
        if (rc != PG_OK)
            return report_store_error(c, rc, "webhooks list");
        print_result(c, &r);
        return 0;
    }
    if (!strcmp(argv[0], "retry")) {
        uint64_t changed = 0;
        int64_t id = 0;
        if (!o.dead && (next >= argc || money_parse_fen(argv[next], INT64_MAX, &id) != PG_OK || id <= 0))
            return usage();
        rc = store_webhook_retry(c->app->db, o.dead ? 0 : id, &changed);
        if (rc != PG_OK)
            return report_store_error(c, rc, "webhooks retry");
        printf("%llu event(s) queued again\n", (unsigned long long)changed);
        return changed > 0 ? 0 : 1;
    }
    return usage();
}

static int cmd_settle(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    settle_result_t r;
    buf_t msg;
    char yuan[MONEY_YUAN_BUFSZ];
    pg_err rc;
    if (parse_opts(argc + 1, argv - 1, &o) < 0 || !o.date)
        return usage();
    if (open_app(c))
        return 1;
    buf_init(&msg, &c->arena);
    rc = ledger_settle(c->app, &c->arena, o.date, o.out, &r, &msg);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: settle failed: %s\n", msg.len ? msg.data : db_last_error(c->app->db));
        return rc == PG_ERR_BAD_INPUT ? EXIT_USAGE : 1;
    }
    money_format_yuan(r.total_fen, yuan);
    if (c->json)
        printf("{\"date\":\"%s\",\"batches\":%u,\"total_fen\":%lld}\n", o.date, r.batches, (long long)r.total_fen);
    else
        printf("settlement %s: %u new batch(es), %s yuan (%lld fen)%s%s\n", o.date, r.batches, yuan,
               (long long)r.total_fen, o.out ? "; payouts in " : "", o.out ? o.out : "");
    return 0;
}

static int cmd_report(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    db_result_t r;
    int64_t total = 0, unbalanced = 0;
    pg_err rc;
    if (parse_opts(argc + 1, argv - 1, &o) < 0 || !o.from || !o.to)
        return usage();
    if (open_app(c))
        return 1;
    rc = ledger_report(c->app, &c->arena, o.from, o.to, &r);
    if (rc == PG_OK)
        rc = ledger_check(c->app, &c->arena, &total, &unbalanced);
    if (rc != PG_OK)
        return report_store_error(c, rc, "report");
    /* ROLLUP rows: channel NULL = the day's total, day NULL = the period's. */
    for (size_t i = 0; i < r.rows; i++) {
        char **row = &r.cells[i * r.cols];
        if (!row[0])
            row[0] = "TOTAL";
        if (!row[1])
            row[1] = "all";
    }
    print_result(c, &r);
    if (!c->json && store_payout_totals(c->app->db, &c->arena, o.from, o.to, &r) == PG_OK && r.rows > 0) {
        printf("\npayouts of batches settled %s..%s:\n", o.from, o.to);
        print_result(c, &r);
    }
    if (!c->json)
        printf("ledger: every transaction sums to zero: %s (all entries sum to %lld fen)\n",
               unbalanced == 0 && total == 0 ? "yes" : "NO", (long long)total);
    return unbalanced == 0 && total == 0 ? 0 : 1;
}

static void print_recon_summary(const recon_summary_t *s, const char *channel, const char *date)
{
    printf("reconciliation %s %s (run %lld): %u bill rows, %u newly imported\n", channel, date, (long long)s->run_id,
           s->rows, s->imported);
    printf("  %-20s %6u\n  %-20s %6u\n  %-20s %6u\n  %-20s %6u\n  %-20s %6u\n  %-20s %6u\n", "matched", s->matched,
           "amount mismatch", s->amount_mismatch, "status mismatch", s->status_mismatch, "fee mismatch",
           s->fee_mismatch, "missing locally", s->missing_local, "missing at provider", s->missing_provider);
    printf("  %-20s %6u\n", "refunds abnormal", s->refund_abnormal);
}

static int cmd_reconcile(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    recon_summary_t s;
    db_result_t items;
    buf_t msg;
    pg_err rc;
    if (parse_opts(argc + 1, argv - 1, &o) < 0 || !o.channel || !o.date)
        return usage();
    if (open_app(c))
        return 1;
    buf_init(&msg, &c->arena);
    rc = reconcile_run(c->app, &c->arena, o.channel, o.date, o.bill, &s, &msg);
    if (rc != PG_OK) {
        fprintf(stderr, "paygatectl: reconcile failed: %s\n", msg.len ? msg.data : db_last_error(c->app->db));
        return rc == PG_ERR_BAD_INPUT ? EXIT_USAGE : 1;
    }
    if (reconcile_items(c->app, &c->arena, s.run_id, c->json, &items) != PG_OK)
        return report_store_error(c, PG_ERR_DB, "reconcile");
    if (c->json) {
        json_t *obj = json_pack("{s:s,s:s,s:I,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "channel", o.channel, "date",
                                o.date, "run_id", (json_int_t)s.run_id, "rows", s.rows, "imported", s.imported,
                                "matched", s.matched, "amount_mismatch", s.amount_mismatch, "status_mismatch",
                                s.status_mismatch, "fee_mismatch", s.fee_mismatch, "missing_local", s.missing_local,
                                "missing_provider", s.missing_provider, "refund_abnormal", s.refund_abnormal,
                                "unexplained", reconcile_unexplained(&s));
        json_object_set_new(obj, "items", result_json(&items));
        json_dumpf(obj, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(obj);
    } else {
        print_recon_summary(&s, o.channel, o.date);
        if (items.rows) {
            printf("\nunexplained:\n");
            print_result(c, &items);
        } else {
            printf("everything matches.\n");
        }
    }
    return reconcile_unexplained(&s) ? 1 : 0;
}

/* One line from stdin into pw (newline removed); without echo when stdin
 * is a terminal. false on EOF or a line too long. */
static bool read_password(const char *prompt, char *pw, size_t size)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    bool ok;
    size_t n;
    if (tty) {
        fputs(prompt, stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ok = fgets(pw, (int)size, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    n = ok ? strlen(pw) : 0;
    if (ok && (n == 0 || pw[n - 1] != '\n') && !feof(stdin))
        ok = false;   /* longer than the buffer */
    while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
        pw[--n] = '\0';
    return ok;
}

/* paygatectl admin add --user U --role R: the console's accounts. */
static int cmd_admin(cli_t *c, int argc, char **argv)
{
    cli_opts_t o;
    char pw[1100], again[1100];
    buf_t msg;
    pg_err rc;
    int next;
    if (argc < 1)
        return usage();
    next = parse_opts(argc, argv, &o);
    if (next < 0)
        return usage();
    if (!strcmp(argv[0], "list")) {
        db_result_t r;
        if (open_app(c))
            return 1;
        if (store_admin_user_list(c->app->db, &c->arena, &r) != PG_OK)
            return report_store_error(c, PG_ERR_DB, "admin list");
        print_result(c, &r);
        return 0;
    }
    if (strcmp(argv[0], "add") || !o.user || !o.role)
        return usage();
    if (!read_password("password: ", pw, sizeof pw)) {
        fprintf(stderr, "paygatectl: no password read\n");
        return EXIT_USAGE;
    }
    if (isatty(STDIN_FILENO) && (!read_password("again: ", again, sizeof again) || strcmp(pw, again))) {
        crypto_wipe(pw, sizeof pw);
        crypto_wipe(again, sizeof again);
        fprintf(stderr, "paygatectl: the passwords differ\n");
        return EXIT_USAGE;
    }
    crypto_wipe(again, sizeof again);
    if (open_app(c)) {
        crypto_wipe(pw, sizeof pw);
        return 1;
    }
    buf_init(&msg, &c->arena);
    rc = admin_account_add(c->app, "cli", NULL, o.user, o.role, pw, &msg);
    crypto_wipe(pw, sizeof pw);
    if (rc == PG_ERR_BAD_INPUT) {
        fprintf(stderr, "paygatectl: %s\n", msg.data);
        return EXIT_USAGE;
    }
    if (rc != PG_OK)
        return report_store_error(c, rc, "admin account");
    printf("admin account %s (%s) added\n", o.user, o.role);
    return 0;
}

static int dispatch(cli_t *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (!strcmp(cmd, "migrate"))
        return cmd_migrate(c);
    if (!strcmp(cmd, "check-config"))
        return cmd_check_config(c);
    if (!strcmp(cmd, "product"))
        return cmd_product(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "creator"))
        return cmd_creator(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "order"))
        return cmd_order(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "refund"))
        return cmd_refund(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "close"))
        return cmd_close(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "sync"))
        return cmd_sync(c);
    if (!strcmp(cmd, "cron"))
        return cmd_cron(c);
    if (!strcmp(cmd, "webhooks"))
        return cmd_webhooks(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "settle"))
        return cmd_settle(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "report"))
        return cmd_report(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "payout"))
        return cmd_payout(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "appstore"))
        return cmd_appstore(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "reconcile"))
        return cmd_reconcile(c, argc - 1, argv + 1);
    if (!strcmp(cmd, "admin"))
        return cmd_admin(c, argc - 1, argv + 1);
    return usage();
}

int main(int argc, char **argv)
{
    cli_t c;
    int i = 1, rc;
    memset(&c, 0, sizeof c);
    /* Global options come before the command. */
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            c.config_path = argv[i + 1];
            i += 2;
        } else if (!strcmp(argv[i], "--json")) {
            c.json = true;
            i++;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            return usage();
        }
    }
    if (i >= argc)
        return usage();
    /* --json may also follow the command. */
    for (int k = i; k < argc; k++) {
        if (!strcmp(argv[k], "--json")) {
            c.json = true;
            for (int m = k; m + 1 < argc; m++)
                argv[m] = argv[m + 1];
            argc--;
            k--;
        }
    }
    arena_init(&c.arena, 0);
    httpc_global_init();
    xml_global_init();
    rc = dispatch(&c, argc - i, argv + i);
    arena_free(&c.arena);
    app_close(c.app);
    xml_global_cleanup();
    httpc_global_cleanup();
    log_close();
    return rc;
}

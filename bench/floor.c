/* Baselines (b), (c) and (d): the physical floor of a checkout, of a
 * notification and of a status read. A FastCGI program (libfcgi) that per
 * request reads the body and then does exactly:
 *
 *   sign:   one RSA-2048 SHA256 signature (OpenSSL EVP, PKCS#1 v1.5) over a
 *           string shaped like an Alipay page.pay request, and one
 *           single-row INSERT + COMMIT (prepared statement, MariaDB
 *           Connector/C);
 *   verify: one RSA-2048 SHA256 verification of a signature made once at
 *           start-up, and one single-row UPDATE + COMMIT (prepared statement)
 *           of a row of bench_floor (rows taken in turn, never the same row
 *           twice in a row, so no lock waits between processes);
 *   read:   one single-row SELECT by unique key (prepared statement, rows
 *           taken in turn), its columns fetched into the JSON reply;
 *   hmac:   one HMAC-SHA256 (EVP_Q_mac) over the request body with a fixed
 *           key (a Stripe webhook's check) and the same UPDATE + COMMIT as
 *           verify;
 *   es256:  one ECDSA P-256 SHA-256 verification (an App Store JWS's ES256)
 *           of a signature made once at start-up with a key made then (KEY.pem
 *           is not used), and the same UPDATE + COMMIT as verify.
 *
 *   floor sign|verify|read|hmac|es256 KEY.pem HOST PORT USER PASSWORD DATABASE
 *
 * The table: bench_floor (created by bench/bench.py). */
#include <fcgiapp.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROWS 100000

static const char payload[] =
    "app_id=2021000000000001&biz_content={\"out_trade_no\":\"BENCHFLOOR0000000000000000000000\","
    "\"product_code\":\"FAST_INSTANT_TRADE_PAY\",\"total_amount\":\"99.00\",\"subject\":"
    "\"C for grown-ups\",\"time_expire\":\"2026-01-02 10:15:00\"}&charset=utf-8&method="
    "alipay.trade.page.pay&notify_url=http://127.0.0.1:8080/pay/notify/alipay&return_url="
    "http://127.0.0.1:8080/pay/return/alipay&sign_type=RSA2&timestamp=2026-01-02 10:00:00"
    "&version=1.0";

static int die(const char *what, MYSQL *db)
{
    fprintf(stderr, "floor: %s%s%s\n", what, db ? ": " : "", db ? mysql_error(db) : "");
    return 1;
}

static int sign(EVP_PKEY *key, unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, (const unsigned char *)payload,
                            sizeof payload - 1) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int verify(EVP_PKEY *key, const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)payload,
                              sizeof payload - 1) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

enum mode { SIGN, VERIFY, READ, HMAC_BODY, ES256 };

static const char *const SQL[] = {
    [SIGN] = "INSERT INTO bench_floor (payment_no, amount_fen, status) VALUES (?, ?, 'CREATED')",
    [VERIFY] = "UPDATE bench_floor SET status = 'PAID', amount_fen = ?, updated_at = UTC_TIMESTAMP() WHERE id = ?",
    [READ] = "SELECT payment_no, amount_fen, status, created_at FROM bench_floor WHERE payment_no = ?",
    [HMAC_BODY] = "UPDATE bench_floor SET status = 'PAID', amount_fen = ?, updated_at = UTC_TIMESTAMP() WHERE id = ?",
    [ES256] = "UPDATE bench_floor SET status = 'PAID', amount_fen = ?, updated_at = UTC_TIMESTAMP() WHERE id = ?",
};

/* HMAC-SHA256 of the body read so far (what a Stripe webhook's check costs). */
static int body_hmac(const char *body, size_t len)
{
    static const char secret[] = "whsec_benchfloorsecret";
    unsigned char mac[32];
    size_t maclen = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, sizeof secret - 1, (const unsigned char *)body, len,
                     mac, sizeof mac, &maclen) != NULL && maclen == 32;
}

/* The read's result columns, fetched as text. */
typedef struct row {
    char col[4][40];
    unsigned long len[4];
    MYSQL_BIND bind[4];
} row_t;

static int bind_row(MYSQL_STMT *st, row_t *row)
{
    memset(row->bind, 0, sizeof row->bind);
    for (int i = 0; i < 4; i++) {
        row->bind[i].buffer_type = MYSQL_TYPE_STRING;
        row->bind[i].buffer = row->col[i];
        row->bind[i].buffer_length = sizeof row->col[i];
        row->bind[i].length = &row->len[i];
    }
    return mysql_stmt_bind_result(st, row->bind) == 0;
}

/* One read: execute, fetch the row, free the result. */
static int read_row(MYSQL_STMT *st)
{
    int rc = mysql_stmt_execute(st) == 0 && mysql_stmt_store_result(st) == 0 && mysql_stmt_fetch(st) == 0;
    mysql_stmt_free_result(st);
    return rc;
}

int main(int argc, char **argv)
{
    FCGX_Request r;
    MYSQL *db;
    MYSQL_STMT *st;
    MYSQL_BIND b[2];
    EVP_PKEY *key;
    FILE *f;
    row_t row;
    unsigned char sig[512], fixed_sig[512];
    size_t siglen = sizeof sig, fixed_len = sizeof fixed_sig;
    char sink[4096], drain[4096], no[40], reply[512];
    unsigned long no_len;
    long long amount = 9900, rowid;
    unsigned long seq = 0;
    enum mode mode;
    if (argc != 8 || (strcmp(argv[1], "sign") && strcmp(argv[1], "verify") && strcmp(argv[1], "read") &&
                      strcmp(argv[1], "hmac") && strcmp(argv[1], "es256"))) {
        fprintf(stderr, "usage: floor sign|verify|read|hmac|es256 KEY.pem HOST PORT USER PASSWORD DB\n");
        return 2;
    }
    mode = !strcmp(argv[1], "sign") ? SIGN : !strcmp(argv[1], "verify") ? VERIFY : !strcmp(argv[1], "hmac") ? HMAC_BODY
           : !strcmp(argv[1], "es256") ? ES256 : READ;
    signal(SIGPIPE, SIG_IGN);
    f = fopen(argv[2], "r");
    if (!f)
        return die("cannot open the key", NULL);
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key && mode == ES256) {   /* the App Store leaf's curve: P-256 */
        EVP_PKEY_free(key);
        key = EVP_EC_gen("P-256");
    }
    if (!key || !sign(key, fixed_sig, &fixed_len))
        return die("cannot read or use the key", NULL);
    db = mysql_init(NULL);
    if (!db || !mysql_real_connect(db, argv[3], argv[5], argv[6], argv[7],
                                   (unsigned)strtoul(argv[4], NULL, 10), NULL, 0))
        return die("connect", db);
    if (mode != READ)
        mysql_autocommit(db, 0);
    st = mysql_stmt_init(db);
    if (!st)
        return die("stmt_init", db);
    if (mysql_stmt_prepare(st, SQL[mode], (unsigned long)strlen(SQL[mode])))
        return die("prepare", db);
    memset(b, 0, sizeof b);
    if (mode == VERIFY || mode == HMAC_BODY || mode == ES256) {
        b[0].buffer_type = MYSQL_TYPE_LONGLONG;
        b[0].buffer = &amount;
        b[1].buffer_type = MYSQL_TYPE_LONGLONG;
        b[1].buffer = &rowid;
    } else {
        b[0].buffer_type = MYSQL_TYPE_STRING;
        b[0].buffer = no;
        b[0].length = &no_len;
        b[1].buffer_type = MYSQL_TYPE_LONGLONG;
        b[1].buffer = &amount;
    }
    if (mysql_stmt_bind_param(st, b) || (mode == READ && !bind_row(st, &row)))
        return die("bind", db);
    if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
        return die("FCGX_Init", NULL);
    srand((unsigned)getpid());
    while (FCGX_Accept_r(&r) >= 0) {
        int ok = 1, status = 200, got, body_len = 0;
        while ((got = FCGX_GetStr(sink + body_len, (int)sizeof sink - body_len, r.in)) > 0) {
            body_len += got;
            if (body_len == (int)sizeof sink) {   /* longer bodies: the first 4 KiB count, the rest is drained */
                while (FCGX_GetStr(drain, (int)sizeof drain, r.in) > 0)
                    ;
                break;
            }
        }
        seq++;
        if (mode == SIGN) {
            siglen = sizeof sig;
            ok = sign(key, sig, &siglen);
            no_len = (unsigned long)snprintf(no, sizeof no, "F%08d%010lu%06d", (int)getpid(),
                                             seq, rand() % 1000000);
        } else if (mode == VERIFY || mode == HMAC_BODY || mode == ES256) {
            ok = mode == HMAC_BODY ? body_hmac(sink, (size_t)body_len) : verify(key, fixed_sig, fixed_len);
            rowid = 1 + (long long)(((unsigned long)getpid() * 7919UL + seq * 2UL) % ROWS);
        } else {
            no_len = (unsigned long)snprintf(no, sizeof no, "S%lu",
                                             1 + ((unsigned long)getpid() * 7919UL + seq) % ROWS);
        }
        if (!ok)
            status = 500;
        else if (mode == READ ? !read_row(st) : (mysql_stmt_execute(st) || mysql_commit(db))) {
            fprintf(stderr, "floor: %s\n", mysql_stmt_error(st));
            if (mode != READ)
                mysql_rollback(db);
            status = 503;
        }
        if (mode == READ && status == 200)
            snprintf(reply, sizeof reply,
                     "Status: 200\r\nContent-Type: application/json\r\n\r\n"
                     "{\"ok\":true,\"payment_no\":\"%.*s\",\"amount_fen\":%.*s,\"status\":\"%.*s\","
                     "\"created_at\":\"%.*s\"}\n", (int)row.len[0], row.col[0], (int)row.len[1], row.col[1],
                     (int)row.len[2], row.col[2], (int)row.len[3], row.col[3]);
        else
            snprintf(reply, sizeof reply,
                     "Status: %d\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
                     "{\"ok\":%s}\n", status, status == 200 ? "true" : "null");
        FCGX_PutStr(reply, (int)strlen(reply), r.out);
        FCGX_Finish_r(&r);
    }
    mysql_stmt_close(st);
    mysql_close(db);
    EVP_PKEY_free(key);
    return 0;
}

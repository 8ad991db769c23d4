/* Baselines (b) and (c): the physical floor of a checkout and of a
 * notification. A FastCGI program (libfcgi) that per request reads the body
 * and then does exactly:
 *
 *   sign:   one RSA-2048 SHA256 signature (OpenSSL EVP, PKCS#1 v1.5) over a
 *           string shaped like an Alipay page.pay request, and one
 *           single-row INSERT + COMMIT (prepared statement, MariaDB
 *           Connector/C);
 *   verify: one RSA-2048 SHA256 verification of a signature made once at
 *           start-up, and one single-row UPDATE + COMMIT (prepared statement)
 *           of a row of bench_floor (rows taken in turn, never the same row
 *           twice in a row, so no lock waits between processes).
 *
 *   floor sign|verify KEY.pem HOST PORT USER PASSWORD DATABASE
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

int main(int argc, char **argv)
{
    FCGX_Request r;
    MYSQL *db;
    MYSQL_STMT *st;
    MYSQL_BIND b[2];
    EVP_PKEY *key;
    FILE *f;
    unsigned char sig[512], fixed_sig[512];
    size_t siglen = sizeof sig, fixed_len = sizeof fixed_sig;
    char sink[4096], no[40], reply[256];
    unsigned long no_len;
    long long amount = 9900, row;
    unsigned long seq = 0;
    int is_sign;
    if (argc != 8 || (strcmp(argv[1], "sign") && strcmp(argv[1], "verify"))) {
        fprintf(stderr, "usage: floor sign|verify KEY.pem HOST PORT USER PASSWORD DB\n");
        return 2;
    }
    is_sign = !strcmp(argv[1], "sign");
    signal(SIGPIPE, SIG_IGN);
    f = fopen(argv[2], "r");
    if (!f)
        return die("cannot open the key", NULL);
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!key || !sign(key, fixed_sig, &fixed_len))
        return die("cannot read or use the key", NULL);
    db = mysql_init(NULL);
    if (!db || !mysql_real_connect(db, argv[3], argv[5], argv[6], argv[7],
                                   (unsigned)strtoul(argv[4], NULL, 10), NULL, 0))
        return die("connect", db);
    mysql_autocommit(db, 0);
    st = mysql_stmt_init(db);
    if (!st)
        return die("stmt_init", db);
    {
        const char *sql = is_sign
            ? "INSERT INTO bench_floor (payment_no, amount_fen, status) VALUES (?, ?, 'CREATED')"
            : "UPDATE bench_floor SET status = 'PAID', amount_fen = ?, updated_at = UTC_TIMESTAMP() WHERE id = ?";
        if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)))
            return die("prepare", db);
    }
    memset(b, 0, sizeof b);
    if (is_sign) {
        b[0].buffer_type = MYSQL_TYPE_STRING;
        b[0].buffer = no;
        b[0].length = &no_len;
        b[1].buffer_type = MYSQL_TYPE_LONGLONG;
        b[1].buffer = &amount;
    } else {
        b[0].buffer_type = MYSQL_TYPE_LONGLONG;
        b[0].buffer = &amount;
        b[1].buffer_type = MYSQL_TYPE_LONGLONG;
        b[1].buffer = &row;
    }
    if (mysql_stmt_bind_param(st, b))
        return die("bind", db);
    if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
        return die("FCGX_Init", NULL);
    srand((unsigned)getpid());
    while (FCGX_Accept_r(&r) >= 0) {
        int ok, status = 200;
        while (FCGX_GetStr(sink, (int)sizeof sink, r.in) > 0)
            ;
        seq++;
        if (is_sign) {
            siglen = sizeof sig;
            ok = sign(key, sig, &siglen);
            no_len = (unsigned long)snprintf(no, sizeof no, "F%08d%010lu%06d", (int)getpid(),
                                             seq, rand() % 1000000);
        } else {
            ok = verify(key, fixed_sig, fixed_len);
            row = 1 + (long long)(((unsigned long)getpid() * 7919UL + seq * 2UL) % ROWS);
        }
        if (!ok)
            status = 500;
        else if (mysql_stmt_execute(st) || mysql_commit(db)) {
            fprintf(stderr, "floor: %s\n", mysql_stmt_error(st));
            mysql_rollback(db);
            status = 503;
        }
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

/* events: the webhook outbox writer. See include/events.h. */
#include "events.h"

#include <string.h>
#include <time.h>

#include "crypto.h"
#include "store.h"
#include "store_lifecycle.h"

static void json_member(buf_t *b, const char *name, const char *value)
{
    buf_printf(b, ",\"%s\":", name);
    if (value)
        buf_append_json_string(b, value);
    else
        buf_puts(b, "null");
}

pg_err events_queue(pg_app_t *app, arena_t *a, const char *type, const char *order_no, const char *extra_json)
{
    order_view_t o;
    char event_id[33] = "evt_";
    buf_t payload;
    pg_err rc;
    if (!app->cfg->merchant.webhook_url || !*app->cfg->merchant.webhook_url)
        return PG_OK;
    rc = store_order_by_no(app->db, a, order_no, &o);   /* sees this transaction's changes */
    if (rc != PG_OK)
        return rc;
    rc = crypto_random_alnum(event_id + 4, 24);
    if (rc != PG_OK)
        return rc;
    buf_init(&payload, a);
    buf_puts(&payload, "{\"id\":");
    buf_append_json_string(&payload, event_id);
    json_member(&payload, "type", type);
    buf_printf(&payload, ",\"created\":%lld,\"data\":{\"order_no\":", (long long)time(NULL));
    buf_append_json_string(&payload, o.order_no);
    json_member(&payload, "status", o.status);
    buf_printf(&payload, ",\"amount_fen\":%lld,\"refunded_fen\":%lld", (long long)o.amount_fen,
               (long long)o.refunded_fen);
    json_member(&payload, "user", o.user_ref);
    json_member(&payload, "product", o.product_sku);
    json_member(&payload, "channel", o.channel);
    json_member(&payload, "payment_no", o.payment_no);
    json_member(&payload, "paid_at", o.paid_at);
    if (extra_json && *extra_json) {
        buf_putc(&payload, ',');
        buf_puts(&payload, extra_json);
    }
    buf_puts(&payload, "}}");
    if (payload.failed)
        return PG_ERR_NOMEM;
    return store_webhook_insert(app->db, event_id, type, o.order_no, payload.data);
}

/* admin_html: the console's HTML. See include/web/admin_html.h. */
#include "admin_html.h"

#include <string.h>

#define CHART_W 600
#define CHART_H 160
#define CHART_TOP 10

void admin_html_security_headers(http_response_t *res)
{
    buf_puts(&res->headers,
             "Content-Security-Policy: default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
             " frame-ancestors 'none'; base-uri 'none'\r\n"
             "X-Frame-Options: DENY\r\n"
             "Referrer-Policy: same-origin\r\n"
             "Vary: Accept-Language, Cookie\r\n");
}

void admin_html_set_cookie(http_response_t *res, const char *root, const char *token, bool secure)
{
    buf_puts(&res->headers, "Set-Cookie: " ADMIN_COOKIE "=");
    buf_puts(&res->headers, token ? token : "");
    buf_puts(&res->headers, "; Path=");
    buf_puts(&res->headers, root);
    buf_puts(&res->headers, "; HttpOnly; SameSite=Strict");
    if (secure)
        buf_puts(&res->headers, "; Secure");
    if (!token)
        buf_puts(&res->headers, "; Max-Age=0");
    buf_puts(&res->headers, "\r\n");
}

const char *admin_html_cookie_token(arena_t *a, const char *h)
{
    static const char name[] = ADMIN_COOKIE "=";
    const char *found = NULL;
    size_t found_len = 0;
    int count = 0;
    while (h && *h) {
        const char *end;
        while (*h == ' ' || *h == ';')
            h++;
        end = strchr(h, ';');
        if (!end)
            end = h + strlen(h);
        if ((size_t)(end - h) > sizeof name - 1 && !strncmp(h, name, sizeof name - 1)) {
            found = h + sizeof name - 1;
            found_len = (size_t)(end - found);
            count++;
        }
        h = end;
    }
    /* Two cookies of that name (one planted for another path): trust none. */
    if (count != 1)
        return NULL;
    while (found_len && found[found_len - 1] == ' ')
        found_len--;
    return arena_strndup(a, found, found_len);
}

void admin_html_text(admin_page_t *p, const char *s)
{
    buf_append_html(p->b, s ? s : "-");
}

void admin_html_msg(admin_page_t *p, i18n_msg_t id, const char *arg)
{
    i18n_append_html(p->b, p->loc, id, arg);
}

void admin_html_amount(admin_page_t *p, int64_t fen)
{
    i18n_append_amount_in(p->b, fen, p->currency);
}

void admin_html_time(admin_page_t *p, const char *iso)
{
    if (!iso || i18n_append_time(p->b, p->loc, iso) != PG_OK)
        admin_html_text(p, iso);
}

static void nav_link(admin_page_t *p, const char *path, i18n_msg_t msg)
{
    buf_puts(p->b, "<a href=\"");
    buf_append_html(p->b, p->root);
    buf_append_html(p->b, path);
    buf_puts(p->b, "\">");
    admin_html_msg(p, msg, NULL);
    buf_puts(p->b, "</a> ");
}

static void nav(admin_page_t *p)
{
    buf_puts(p->b, "<nav id=\"nav\">");
    nav_link(p, "/", MSG_ADM_NAV_TODAY);
    nav_link(p, "/orders", MSG_ADM_NAV_ORDERS);
    nav_link(p, "/reconciliation", MSG_ADM_NAV_RECON);
    nav_link(p, "/settlement", MSG_ADM_NAV_SETTLEMENT);
    nav_link(p, "/catalogue", MSG_ADM_NAV_CATALOGUE);
    nav_link(p, "/webhooks", MSG_ADM_NAV_WEBHOOKS);
    nav_link(p, "/audit", MSG_ADM_NAV_AUDIT);
    if (p->is_owner)
        nav_link(p, "/accounts", MSG_ADM_NAV_ACCOUNTS);
    buf_puts(p->b, "<span class=\"who\" id=\"signed-in-as\">");
    admin_html_msg(p, MSG_ADM_SIGNED_IN_AS, p->username);
    buf_puts(p->b, " (<span id=\"role\">");
    admin_html_text(p, p->role);
    buf_puts(p->b, "</span>)</span> ");
    admin_html_form_begin(p, "/logout", "logout-form");
    admin_html_submit(p, "logout", MSG_ADM_LOGOUT);
    admin_html_form_end(p);
    buf_puts(p->b, "</nav>\n");
}

void admin_html_begin(admin_page_t *p, int status, i18n_msg_t title, const char *title_arg)
{
    http_response_t *res = p->res;
    res->status = status;
    res->content_type = "text/html; charset=utf-8";
    buf_clear(&res->body);
    admin_html_security_headers(res);
    buf_puts(p->b, "<!doctype html>\n<html lang=\"");
    buf_append_html(p->b, i18n_locale_name(p->loc));
    buf_puts(p->b, "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, "
                   "initial-scale=1\"><meta name=\"referrer\" content=\"same-origin\"><title>");
    admin_html_msg(p, title, title_arg);
    buf_puts(p->b, " - ");
    admin_html_msg(p, MSG_ADM_CONSOLE, NULL);
    buf_puts(p->b, "</title><link rel=\"stylesheet\" href=\"");
    buf_append_html(p->b, p->root);
    buf_puts(p->b, "/style.css\"></head><body>\n");
    if (p->username)
        nav(p);
    buf_puts(p->b, "<main><h1 id=\"title\">");
    admin_html_msg(p, title, title_arg);
    buf_puts(p->b, "</h1>\n");
}

void admin_html_end(admin_page_t *p)
{
    buf_puts(p->b, "</main></body></html>\n");
}

void admin_html_stylesheet(http_response_t *res)
{
    res->status = 200;
    res->content_type = "text/css; charset=utf-8";
    admin_html_security_headers(res);
    buf_puts(&res->body,
             "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
             "main{max-width:72rem;margin:1rem auto;padding:0 1rem}"
             "nav{background:#1f2937;color:#eee;padding:.5rem 1rem}nav a{color:#cde;margin-right:.8rem}"
             "nav form{display:inline}nav .who{margin:0 .8rem}"
             "h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}"
             "table{border-collapse:collapse;margin:.4rem 0;background:#fff}"
             "td,th{padding:.25rem .5rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
             "td.num{text-align:right;font-variant-numeric:tabular-nums}"
             "pre{white-space:pre-wrap;word-break:break-all;max-width:40rem;margin:0;font-size:.8rem}"
             ".notice{padding:.5rem .8rem;background:#e8f5e9;border:1px solid #a5d6a7}"
             ".error{background:#fdecea;border-color:#f5a3a3}"
             "form.inline{display:inline}label{margin-right:.6rem}input,select{margin:.15rem}"
             "svg{background:#fff;border:1px solid #ddd}svg rect{fill:#1677ff}"
             ".code{color:#666;font-size:.8rem}\n");
}

void admin_html_notice(admin_page_t *p, const char *id, bool error, i18n_msg_t msg, const char *arg)
{
    buf_puts(p->b, error ? "<p class=\"notice error\"" : "<p class=\"notice\"");
    if (id) {
        buf_puts(p->b, " id=\"");
        buf_append_html(p->b, id);
        buf_puts(p->b, "\"");
    }
    buf_puts(p->b, ">");
    admin_html_msg(p, msg, arg);
    buf_puts(p->b, "</p>\n");
}

void admin_html_h2(admin_page_t *p, i18n_msg_t title)
{
    buf_puts(p->b, "<h2>");
    admin_html_msg(p, title, NULL);
    buf_puts(p->b, "</h2>\n");
}

void admin_html_link(admin_page_t *p, const char *path, const char *text)
{
    buf_puts(p->b, "<a href=\"");
    buf_append_html(p->b, p->root);
    buf_append_html(p->b, path);
    buf_puts(p->b, "\">");
    admin_html_text(p, text);
    buf_puts(p->b, "</a>");
}

void admin_html_link_msg(admin_page_t *p, const char *path, i18n_msg_t msg)
{
    buf_puts(p->b, "<a href=\"");
    buf_append_html(p->b, p->root);
    buf_append_html(p->b, path);
    buf_puts(p->b, "\">");
    admin_html_msg(p, msg, NULL);
    buf_puts(p->b, "</a>");
}

void admin_html_form_begin(admin_page_t *p, const char *path, const char *id)
{
    buf_puts(p->b, "<form method=\"post\" class=\"inline\" action=\"");
    buf_append_html(p->b, p->root);
    buf_append_html(p->b, path);
    buf_puts(p->b, "\"");
    if (id) {
        buf_puts(p->b, " id=\"");
        buf_append_html(p->b, id);
        buf_puts(p->b, "\"");
    }
    buf_puts(p->b, ">");
    if (p->csrf)
        admin_html_hidden(p, "csrf", p->csrf);
}

void admin_html_hidden(admin_page_t *p, const char *name, const char *value)
{
    buf_puts(p->b, "<input type=\"hidden\" name=\"");
    buf_append_html(p->b, name);
    buf_puts(p->b, "\" value=\"");
    buf_append_html(p->b, value ? value : "");
    buf_puts(p->b, "\">");
}

void admin_html_input(admin_page_t *p, const char *name, i18n_msg_t label, const char *value, const char *type)
{
    buf_puts(p->b, "<label>");
    admin_html_msg(p, label, NULL);
    buf_puts(p->b, " <input name=\"");
    buf_append_html(p->b, name);
    buf_puts(p->b, "\" id=\"f-");
    buf_append_html(p->b, name);
    buf_puts(p->b, "\" type=\"");
    buf_append_html(p->b, type ? type : "text");
    buf_puts(p->b, "\" value=\"");
    buf_append_html(p->b, value ? value : "");
    buf_puts(p->b, "\"></label>");
}

void admin_html_submit(admin_page_t *p, const char *id, i18n_msg_t label)
{
    buf_puts(p->b, "<button type=\"submit\"");
    if (id) {
        buf_puts(p->b, " id=\"");
        buf_append_html(p->b, id);
        buf_puts(p->b, "\"");
    }
    buf_puts(p->b, ">");
    admin_html_msg(p, label, NULL);
    buf_puts(p->b, "</button>");
}

void admin_html_form_end(admin_page_t *p)
{
    buf_puts(p->b, "</form>\n");
}

void admin_html_table_begin(admin_page_t *p, const char *id, const i18n_msg_t *headers, size_t n)
{
    buf_puts(p->b, "<table");
    if (id) {
        buf_puts(p->b, " id=\"");
        buf_append_html(p->b, id);
        buf_puts(p->b, "\"");
    }
    buf_puts(p->b, "><thead><tr>");
    for (size_t i = 0; i < n; i++) {
        buf_puts(p->b, "<th>");
        admin_html_msg(p, headers[i], NULL);
        buf_puts(p->b, "</th>");
    }
    buf_puts(p->b, "</tr></thead><tbody>\n");
}

void admin_html_row_begin(admin_page_t *p)
{
    buf_puts(p->b, "<tr>");
}

void admin_html_cell(admin_page_t *p, const char *text)
{
    buf_puts(p->b, "<td>");
    admin_html_text(p, text);
    buf_puts(p->b, "</td>");
}

void admin_html_cell_amount(admin_page_t *p, int64_t fen)
{
    buf_printf(p->b, "<td class=\"num\" data-fen=\"%lld\">", (long long)fen);
    admin_html_amount(p, fen);
    buf_puts(p->b, "</td>");
}

void admin_html_cell_time(admin_page_t *p, const char *iso)
{
    buf_puts(p->b, "<td>");
    admin_html_time(p, iso);
    buf_puts(p->b, "</td>");
}

void admin_html_cell_link(admin_page_t *p, const char *path, const char *text)
{
    buf_puts(p->b, "<td>");
    admin_html_link(p, path, text);
    buf_puts(p->b, "</td>");
}

void admin_html_cell_status(admin_page_t *p, const char *status)
{
    const char *words = i18n_status_msg(p->loc, status);
    buf_puts(p->b, "<td>");
    if (words) {
        buf_append_html(p->b, words);
        buf_puts(p->b, " ");
    }
    buf_puts(p->b, "<span class=\"code status\">");
    admin_html_text(p, status);
    buf_puts(p->b, "</span></td>");
}

void admin_html_cell_pre(admin_page_t *p, const char *text)
{
    buf_puts(p->b, "<td><pre>");
    admin_html_text(p, text);
    buf_puts(p->b, "</pre></td>");
}

void admin_html_row_end(admin_page_t *p)
{
    buf_puts(p->b, "</tr>\n");
}

void admin_html_table_end(admin_page_t *p, size_t rows)
{
    buf_puts(p->b, "</tbody></table>\n");
    if (rows == 0) {
        buf_puts(p->b, "<p class=\"empty\">");
        admin_html_msg(p, MSG_ADM_NO_ROWS, NULL);
        buf_puts(p->b, "</p>\n");
    }
}

/* Heights are proportional to the largest value: h = v * H / max, in
 * integers (v <= max, so v * H cannot overflow for any amount we hold:
 * MONEY_MAX_FEN * 160 < 2^63). */
void admin_html_chart(admin_page_t *p, const int64_t *values, const char *const *labels, size_t n)
{
    int64_t max = 0;
    int64_t slot = n ? CHART_W / (int64_t)n : CHART_W;
    for (size_t i = 0; i < n; i++)
        if (values[i] > max)
            max = values[i];
    buf_printf(p->b, "<svg id=\"chart\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\""
                     " xmlns=\"http://www.w3.org/2000/svg\"><title>",
               CHART_W, CHART_H + CHART_TOP + 2, CHART_W, CHART_H + CHART_TOP + 2);
    admin_html_msg(p, MSG_ADM_CHART_TITLE, NULL);
    buf_puts(p->b, "</title>");
    for (size_t i = 0; i < n; i++) {
        int64_t v = values[i] > 0 ? values[i] : 0;
        int64_t h = max > 0 ? v * CHART_H / max : 0;
        if (v > 0 && h == 0)
            h = 1;
        buf_printf(p->b, "<rect data-day=\"");
        buf_append_html(p->b, labels[i]);
        buf_printf(p->b, "\" data-fen=\"%lld\" x=\"%lld\" y=\"%lld\" width=\"%lld\" height=\"%lld\"><title>",
                   (long long)v, (long long)((int64_t)i * slot + 2), (long long)(CHART_TOP + CHART_H - h),
                   (long long)(slot > 4 ? slot - 4 : 1), (long long)h);
        buf_append_html(p->b, labels[i]);
        buf_puts(p->b, " ");
        i18n_append_amount(p->b, v);
        buf_puts(p->b, "</title></rect>");
    }
    buf_puts(p->b, "</svg>\n");
}

/* admin_html: the rendering of the operator's console (/admin/): the page
 * frame (navigation, language, security headers), forms with the CSRF
 * field, tables, amounts and times, the 30-day chart (inline SVG drawn
 * with integer arithmetic) and the stylesheet. Every value is HTML
 * escaped; no script anywhere, so the Content-Security-Policy allows none.
 * Knows nothing of the database: the controller (fcgi-app/admin_routes.c)
 * hands it plain strings and numbers. */
#ifndef ADMIN_HTML_H
#define ADMIN_HTML_H
#include <stdbool.h>
#include <stdint.h>
#include "http.h"
#include "i18n.h"

#define ADMIN_COOKIE "pg_admin"

typedef struct admin_page {
    http_response_t *res;
    buf_t *b;                  /* = &res->body */
    i18n_locale_t loc;
    const char *root;          /* base_path + "/admin" (links and forms) */
    const char *username;      /* NULL: not signed in (no navigation) */
    const char *role;
    const char *csrf;          /* the session's token (forms) */
    bool can_act;              /* operator or owner: action forms shown */
    bool is_owner;
    const char *currency;      /* the amounts' currency (lowercase ISO code), NULL: yuan */
} admin_page_t;

/* The console's headers: CSP without script, frame denial, no referrer. */
void admin_html_security_headers(http_response_t *res);
/* The session cookie (token NULL: an expired one that clears it). */
void admin_html_set_cookie(http_response_t *res, const char *root, const char *token, bool secure);
/* The value of the console's cookie in a Cookie header, or NULL. */
const char *admin_html_cookie_token(arena_t *a, const char *cookie_header);

void admin_html_begin(admin_page_t *p, int status, i18n_msg_t title, const char *title_arg);
void admin_html_end(admin_page_t *p);
void admin_html_stylesheet(http_response_t *res);

void admin_html_text(admin_page_t *p, const char *s);          /* escaped; NULL: "-" */
void admin_html_msg(admin_page_t *p, i18n_msg_t id, const char *arg);
void admin_html_amount(admin_page_t *p, int64_t fen);
void admin_html_time(admin_page_t *p, const char *iso_utc);    /* NULL: "-" */
void admin_html_notice(admin_page_t *p, const char *id, bool error, i18n_msg_t msg, const char *arg);
void admin_html_h2(admin_page_t *p, i18n_msg_t title);

/* <a href="ROOT PATH">text</a>; path is escaped, must start with '/'. */
void admin_html_link(admin_page_t *p, const char *path, const char *text);
void admin_html_link_msg(admin_page_t *p, const char *path, i18n_msg_t msg);

/* <form method="post" action="ROOT PATH"> with the CSRF hidden field. */
void admin_html_form_begin(admin_page_t *p, const char *path, const char *id);
void admin_html_hidden(admin_page_t *p, const char *name, const char *value);
void admin_html_input(admin_page_t *p, const char *name, i18n_msg_t label, const char *value, const char *type);
void admin_html_submit(admin_page_t *p, const char *id, i18n_msg_t label);
void admin_html_form_end(admin_page_t *p);

/* Tables: headers from the catalogue, then cells. */
void admin_html_table_begin(admin_page_t *p, const char *id, const i18n_msg_t *headers, size_t n);
void admin_html_row_begin(admin_page_t *p);
void admin_html_cell(admin_page_t *p, const char *text);
void admin_html_cell_amount(admin_page_t *p, int64_t fen);
void admin_html_cell_time(admin_page_t *p, const char *iso_utc);
void admin_html_cell_link(admin_page_t *p, const char *path, const char *text);
void admin_html_cell_status(admin_page_t *p, const char *status);   /* order status in words + code */
void admin_html_cell_pre(admin_page_t *p, const char *text);
void admin_html_row_end(admin_page_t *p);
void admin_html_table_end(admin_page_t *p, size_t rows);          /* "Nothing here." when 0 rows */

/* Bars of values[n] (fen, >= 0) with labels[n] (days) as inline SVG. */
void admin_html_chart(admin_page_t *p, const int64_t *values, const char *const *labels, size_t n);

#endif

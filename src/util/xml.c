/* xml: WeChat's flat XML (see include/xml.h), the only file that includes
 * libxml2.
 *
 * Defence in layers, because a notification body is attacker-controlled and
 * the 2018 WeChat SDK XXE read merchants' files through exactly this path:
 *   1. bytes: size bound, no NUL, no "<!DOCTYPE"/"<!ENTITY" anywhere, before
 *      libxml2 is called at all (so nothing can be expanded or fetched);
 *   2. parser: never NOENT/DTDLOAD/DTDATTR/HUGE; NONET; the document is read
 *      as UTF-8 whatever it declares; SAX hooks stop the parser on any
 *      internal/external subset, entity declaration or entity reference;
 *   3. tree: no DTD node, only the allowed root, leaves of text/CDATA only.
 * Errors go to a per-parser structured handler (never stderr), and the
 * calling thread's generic/structured handlers are silenced as well, for the
 * few libxml2 paths that do not consult the parser context. */
#include "xml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlversion.h>

/* XML_PARSE_NO_XXE arrived in libxml2 2.13; Debian 12 has 2.9.14, where the
 * DOCTYPE refusal above already makes external entities impossible. */
#if LIBXML_VERSION >= 21300
#define XML_EXTRA_OPTIONS XML_PARSE_NO_XXE
#else
#define XML_EXTRA_OPTIONS 0
#endif

#define XML_PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_IGNORE_ENC | \
                           XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_EXTRA_OPTIONS)

static const char *const xml_default_roots[] = { "xml", NULL };

/* State shared with the SAX hooks through ctxt->_private. */
typedef struct xml_guard {
    const char *refused;       /* why the SAX hooks stopped the parser */
    char first_error[128];     /* libxml2's first message, for err */
} xml_guard_t;

/* ------------------------------------------------------------------ */
/* libxml2 error plumbing                                              */

static void xml_silent_generic(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void xml_silent_structured(void *ctx, xmlErrorPtr e)
{
    (void)ctx;
    (void)e;
}

/* Silences libxml2 for the calling thread (its error globals are
 * thread-local when libxml2 is built with threads, as Debian's is). */
static void xml_quiet_thread(void)
{
    xmlSetGenericErrorFunc(NULL, xml_silent_generic);
    xmlSetStructuredErrorFunc(NULL, xml_silent_structured);
}

void xml_global_init(void)
{
    xmlInitParser();
    xml_quiet_thread();
}

void xml_global_cleanup(void)
{
    xmlCleanupParser();
}

static xml_guard_t *guard_of(void *ctx)
{
    xmlParserCtxtPtr ctxt = ctx;
    return ctxt != NULL ? ctxt->_private : NULL;
}

/* serror: ctx is ctxt->userData, which is the parser context itself. */
static void xml_record_error(void *ctx, xmlErrorPtr e)
{
    xml_guard_t *g = guard_of(ctx);
    size_t n;

    if (g == NULL || e == NULL || g->first_error[0] != '\0' || e->message == NULL)
        return;
    snprintf(g->first_error, sizeof g->first_error, "line %d: %s", e->line, e->message);
    n = strlen(g->first_error);
    while (n > 0 && (g->first_error[n - 1] == '\n' || g->first_error[n - 1] == ' '))
        g->first_error[--n] = '\0';
}

static void xml_refuse(void *ctx, const char *why)
{
    xml_guard_t *g = guard_of(ctx);
    if (g != NULL && g->refused == NULL)
        g->refused = why;
    xmlStopParser(ctx);
}

static void xml_on_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
    (void)name;
    (void)ext_id;
    (void)sys_id;
    xml_refuse(ctx, "DOCTYPE refused");
}

static void xml_on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                               const xmlChar *system_id, xmlChar *content)
{
    (void)name;
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    xml_refuse(ctx, "entity declaration refused");
}

static void xml_on_reference(void *ctx, const xmlChar *name)
{
    (void)name;
    xml_refuse(ctx, "entity reference refused");
}

/* ------------------------------------------------------------------ */
/* Byte-level screening                                                */

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive search of an ASCII needle (lowercase) in bytes. The
 * needle's first byte must have no case (here always '<'): memchr jumps
 * from one candidate to the next. */
static int contains_ci(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    const char *end = s + len, *p = s;
    while ((size_t)(end - p) >= n && (p = memchr(p, needle[0], (size_t)(end - p) - n + 1)) != NULL) {
        size_t j = 1;
        while (j < n && ascii_lower((unsigned char)p[j]) == needle[j])
            j++;
        if (j == n)
            return 1;
        p++;
    }
    return 0;
}

static pg_err screen_bytes(const char *doc, size_t len, buf_t *err)
{
    if (len > XML_MAX_BYTES) {
        buf_set_error(err, "xml: document of %zu bytes exceeds %d", len, XML_MAX_BYTES);
        return PG_ERR_TOO_LARGE;
    }
    if (doc == NULL || len == 0) {
        buf_set_error(err, "xml: empty document");
        return PG_ERR_BAD_INPUT;
    }
    /* A NUL would also mean UTF-16/32, where the ASCII scan below is blind. */
    if (memchr(doc, '\0', len) != NULL) {
        buf_set_error(err, "xml: NUL byte in document");
        return PG_ERR_BAD_INPUT;
    }
    if (contains_ci(doc, len, "<!doctype") || contains_ci(doc, len, "<!entity")) {
        buf_set_error(err, "xml: DOCTYPE/ENTITY refused");
        return PG_ERR_BAD_INPUT;
    }
    return PG_OK;
}

/* ------------------------------------------------------------------ */
/* Tree checks                                                         */

static int is_key_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_valid_key(const char *k)
{
    if (k == NULL || *k == '\0')
        return 0;
    for (; *k != '\0'; k++)
        if (!is_key_char((unsigned char)*k))
            return 0;
    return 1;
}

static int is_blank_text(const xmlChar *s)
{
    if (s == NULL)
        return 1;
    for (; *s != '\0'; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    return 1;
}

static int plain_element(xmlNodePtr n)
{
    return n->ns == NULL && n->nsDef == NULL && n->properties == NULL;
}

static int root_allowed(const char *name, const char *const *roots)
{
    for (; *roots != NULL; roots++)
        if (strcmp(name, *roots) == 0)
            return 1;
    return 0;
}

/* Joins the text/CDATA children of one leaf into val. */
static pg_err leaf_value(xmlNodePtr el, buf_t *val, buf_t *err)
{
    xmlNodePtr n;

    buf_clear(val);
    for (n = el->children; n != NULL; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content != NULL)
                buf_puts(val, (const char *)n->content);
            continue;
        }
        if (n->type == XML_ELEMENT_NODE)
            buf_set_error(err, "xml: nested element <%.40s> in <%.40s>", (const char *)n->name,
                    (const char *)el->name);
        else
            buf_set_error(err, "xml: node type %d in <%.40s> refused", (int)n->type, (const char *)el->name);
        return PG_ERR_BAD_INPUT;
    }
    return val->failed ? PG_ERR_NOMEM : PG_OK;
}

static int cmp_key_ptr(const void *a, const void *b)
{
    const char *const *ka = a;
    const char *const *kb = b;
    return strcmp(*ka, *kb);
}

/* Sorting keeps the repeat check O(n log n): a 64 KiB body may hold
 * thousands of <a/> leaves. */
static pg_err check_unique(const kv_list_t *l, buf_t *err)
{
    const char **keys;
    size_t i;
    pg_err rc = PG_OK;

    if (l->count < 2)
        return PG_OK;
    keys = malloc(l->count * sizeof *keys);
    if (keys == NULL)
        return PG_ERR_NOMEM;
    for (i = 0; i < l->count; i++)
        keys[i] = l->items[i].key;
    qsort(keys, l->count, sizeof *keys, cmp_key_ptr);
    for (i = 0; i + 1 < l->count; i++) {
        if (strcmp(keys[i], keys[i + 1]) == 0) {
            buf_set_error(err, "xml: repeated field <%.40s>", keys[i]);
            rc = PG_ERR_BAD_INPUT;
            break;
        }
    }
    free(keys);
    return rc;
}

static pg_err walk_tree(xmlDocPtr doc, const char *const *roots, kv_list_t *out, buf_t *err)
{
    xmlNodePtr root = NULL, n;
    buf_t val;
    pg_err rc = PG_OK;

    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        buf_set_error(err, "xml: DOCTYPE refused");
        return PG_ERR_BAD_INPUT;
    }
    for (n = doc->children; n != NULL; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && root == NULL) {
            root = n;
            continue;
        }
        buf_set_error(err, "xml: node type %d outside the root refused", (int)n->type);
        return PG_ERR_BAD_INPUT;
    }
    if (root == NULL || !root_allowed((const char *)root->name, roots)) {
        buf_set_error(err, "xml: root <%.40s> not allowed", root != NULL ? (const char *)root->name : "");
        return PG_ERR_BAD_INPUT;
    }
    if (!plain_element(root)) {
        buf_set_error(err, "xml: attributes or namespaces on the root refused");
        return PG_ERR_BAD_INPUT;
    }

    buf_init(&val, NULL);
    for (n = root->children; n != NULL; n = n->next) {
        const char *name = (const char *)n->name;
        if (n->type == XML_TEXT_NODE && is_blank_text(n->content))
            continue;
        if (n->type != XML_ELEMENT_NODE) {
            buf_set_error(err, "xml: node type %d directly under the root refused", (int)n->type);
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        if (!is_valid_key(name) || !plain_element(n)) {
            buf_set_error(err, "xml: element <%.40s> refused (name, attributes or namespace)", name);
            rc = PG_ERR_BAD_INPUT;
            goto done;
        }
        if ((rc = leaf_value(n, &val, err)) != PG_OK)
            goto done;
        if ((rc = kv_add(out, name, val.data)) != PG_OK)
            goto done;
    }
    rc = check_unique(out, err);
done:
    buf_free(&val);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */

pg_err xml_parse_flat_root(arena_t *a, const char *doc, size_t len, const char *const *roots,
                           kv_list_t *out, buf_t *err)
{
    xmlParserCtxtPtr ctxt = NULL;
    xmlDocPtr tree = NULL;
    xml_guard_t guard;
    pg_err rc;

    kv_init(out, a);
    if (roots == NULL || roots[0] == NULL)
        roots = xml_default_roots;
    if ((rc = screen_bytes(doc, len, err)) != PG_OK)
        return rc;

    xml_quiet_thread();
    memset(&guard, 0, sizeof guard);
    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL)
        return PG_ERR_NOMEM;
    ctxt->_private = &guard;
    /* xmlNewParserCtxt installs a SAX2 handler (initialized == XML_SAX2_MAGIC),
     * so serror is consulted before any global channel. */
    ctxt->sax->serror = xml_record_error;
    ctxt->sax->internalSubset = xml_on_subset;
    ctxt->sax->externalSubset = xml_on_subset;
    ctxt->sax->entityDecl = xml_on_entity_decl;
    ctxt->sax->reference = xml_on_reference;
    ctxt->vctxt.error = NULL;
    ctxt->vctxt.warning = NULL;

    tree = xmlCtxtReadMemory(ctxt, doc, (int)len, NULL, "UTF-8", XML_PARSE_OPTIONS);
    if (guard.refused != NULL) {
        buf_set_error(err, "xml: %s", guard.refused);
        rc = PG_ERR_BAD_INPUT;
        goto done;
    }
    if (tree == NULL || !ctxt->wellFormed) {
        buf_set_error(err, "xml: not well-formed (%s)",
                guard.first_error[0] != '\0' ? guard.first_error : "no detail");
        rc = PG_ERR_BAD_INPUT;
        goto done;
    }
    rc = walk_tree(tree, roots, out, err);
done:
    if (rc != PG_OK)
        kv_init(out, a);   /* never hand out half a message */
    xmlFreeDoc(tree);
    ctxt->_private = NULL;
    xmlFreeParserCtxt(ctxt);
    return rc;
}

pg_err xml_parse_flat(arena_t *a, const char *doc, size_t len, kv_list_t *out, buf_t *err)
{
    return xml_parse_flat_root(a, doc, len, xml_default_roots, out, err);
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) without C0
 * controls other than \t \n \r: what a CDATA section can carry. */
static int cdata_safe(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned char c = *p;
        size_t need, i;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return 0;
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (i = 1; i <= need; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        p += need + 1;
    }
    return 1;
}

static void append_cdata(buf_t *out, const char *v)
{
    const char *hit;
    buf_puts(out, "<![CDATA[");
    /* "]]>" cannot appear inside one section: end the section after "]]"
     * and start the next with ">". */
    while ((hit = strstr(v, "]]>")) != NULL) {
        buf_append(out, v, (size_t)(hit - v) + 2);
        buf_puts(out, "]]><![CDATA[");
        v = hit + 2;
    }
    buf_puts(out, v);
    buf_puts(out, "]]>");
}

pg_err xml_build_flat(const kv_list_t *fields, buf_t *out)
{
    size_t i;

    for (i = 0; i < fields->count; i++) {
        const kv_pair_t *p = &fields->items[i];
        if (!is_valid_key(p->key) || p->value == NULL || !cdata_safe(p->value))
            return PG_ERR_BAD_INPUT;
    }
    buf_puts(out, "<xml>");
    for (i = 0; i < fields->count; i++) {
        const kv_pair_t *p = &fields->items[i];
        buf_printf(out, "<%s>", p->key);
        append_cdata(out, p->value);
        buf_printf(out, "</%s>", p->key);
    }
    buf_puts(out, "</xml>");
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

/* xml: the flat XML dialect of WeChat Pay v2, and the only user of libxml2.
 *
 * A WeChat message is one root element (<xml>) whose children are leaf
 * elements holding text or CDATA. The reader is hardened against the 2018
 * XXE class of attacks: any DOCTYPE or ENTITY declaration is refused by a
 * byte scan before libxml2 sees the document (and again by libxml2 SAX hooks
 * and a tree check), no entity is ever substituted, the network is never
 * touched, and the size is bounded. libxml2 diagnostics never reach stderr.
 *
 * What the reader refuses (PG_ERR_BAD_INPUT unless noted):
 *   - more than XML_MAX_BYTES (PG_ERR_TOO_LARGE), NUL bytes, a byte-order mark
 *     other than UTF-8's (the document is always read as UTF-8, whatever its
 *     declaration says, so a UTF-16 document cannot hide a DOCTYPE);
 *   - "<!DOCTYPE" / "<!ENTITY" anywhere (case-insensitive), even inside CDATA;
 *   - a root other than the allowed name(s), attributes or namespaces on any
 *     element, non-blank text directly under the root;
 *   - a child element that has element children (nesting), a repeated child,
 *     a child name outside [A-Za-z0-9_];
 *   - comments and processing instructions anywhere (WeChat never sends
 *     them; refusing them keeps "what was signed" unambiguous);
 *   - anything libxml2 finds not well-formed (truncation, undeclared
 *     entities, bad UTF-8).
 * Values are kept exactly: text and CDATA pieces of one leaf are joined with
 * nothing trimmed (predefined entities and character references in plain
 * text are decoded as XML requires). An empty leaf (<a/>, <a></a>,
 * <a><![CDATA[]]></a>) gives the empty string. */
#ifndef XML_H
#define XML_H
#include <stddef.h>
#include "arena.h"
#include "buf.h"
#include "kv.h"
#include "pg_err.h"

#define XML_MAX_BYTES (64 * 1024)

/* Once per process, before threads (xmlInitParser), and at exit. */
void xml_global_init(void);
void xml_global_cleanup(void);

/* Root must be <xml>. out is initialised with arena a (kv_init) and gets the
 * leaves in document order. err (may be NULL) gets a short reason. */
pg_err xml_parse_flat(arena_t *a, const char *doc, size_t len, kv_list_t *out, buf_t *err);

/* Same, with the allowed root names given as a NULL-terminated list
 * (WeChat's decrypted refund req_info uses <root>). */
pg_err xml_parse_flat_root(arena_t *a, const char *doc, size_t len, const char *const *roots,
                           kv_list_t *out, buf_t *err);

/* <xml><k><![CDATA[v]]></k>...</xml>, no declaration, no whitespace, in list
 * order. Keys must be non-empty [A-Za-z0-9_]; values must not hold control
 * bytes other than \t \n \r (XML cannot carry them): PG_ERR_BAD_INPUT. A "]]>"
 * inside a value is split across two CDATA sections. Appends to out. */
pg_err xml_build_flat(const kv_list_t *fields, buf_t *out);

#endif

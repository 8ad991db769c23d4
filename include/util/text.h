/* text: checks of the short identifiers that cross our boundaries (SKUs,
 * user references, order and refund numbers, request ids). */
#ifndef TEXT_H
#define TEXT_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

/* True when s (NULL allowed: false) is 1..max chars of [A-Za-z0-9] and the
 * characters listed in extra. */
bool text_is_token(const char *s, size_t max, const char *extra);
/* The same for the first n bytes of s (a path segment). */
bool text_is_token_n(const char *s, size_t n, size_t max, const char *extra);

/* Alipay's subject at most 256 characters, "no / = & and similar special characters"
 * (SDK model docs; ../shared/PROTOCOLS.md). */
#define TEXT_ALIPAY_SUBJECT_MAX 256
/* A product title as an Alipay subject: each run of the characters that
 * Alipay's SDK forbids or that are special in a form or a URL (/ = & ? # %
 * + \ < >), of white space and of control bytes becomes one space;
 * invalid UTF-8 bytes are dropped; trimmed; cut to max_chars characters
 * (code points, never inside one). Nothing left: "Order". Appends to out;
 * false when title was not valid UTF-8 (the rest is still appended). */
bool text_alipay_subject(const char *title, size_t max_chars, buf_t *out);

#endif

/* text: checks of the short identifiers that cross our boundaries (SKUs,
 * user references, order and refund numbers, request ids). */
#ifndef TEXT_H
#define TEXT_H
#include <stdbool.h>
#include <stddef.h>

/* True when s (NULL allowed: false) is 1..max chars of [A-Za-z0-9] and the
 * characters listed in extra. */
bool text_is_token(const char *s, size_t max, const char *extra);
/* The same for the first n bytes of s (a path segment). */
bool text_is_token_n(const char *s, size_t n, size_t max, const char *extra);

#endif

/* text: see include/text.h. */
#include "text.h"

#include <string.h>

bool text_is_token_n(const char *s, size_t n, size_t max, const char *extra)
{
    if (s == NULL || n < 1 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == '\0' || !strchr(extra, c)))
            return false;
    }
    return true;
}

bool text_is_token(const char *s, size_t max, const char *extra)
{
    return s != NULL && text_is_token_n(s, strlen(s), max, extra);
}

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

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *p)
{
    size_t len = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (len == 2 && *p < 0xC2) || (len == 4 && *p > 0xF4))
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    }
    if (len == 3 && ((*p == 0xE0 && p[1] < 0xA0) || (*p == 0xED && p[1] >= 0xA0)))
        return 0;   /* overlong, or a UTF-16 surrogate */
    if (len == 4 && ((*p == 0xF0 && p[1] < 0x90) || (*p == 0xF4 && p[1] >= 0x90)))
        return 0;
    return len;
}

static bool subject_separator(unsigned char c)
{
    return c <= 0x20 || c == 0x7F || strchr("/=&?#%+\\<>", c) != NULL;
}

bool text_alipay_subject(const char *title, size_t max_chars, buf_t *out)
{
    const unsigned char *p = (const unsigned char *)(title ? title : "");
    size_t chars = 0, start = out->len;
    bool gap = false, valid = true;
    while (*p && chars < max_chars) {
        size_t len = utf8_seq_len(p);
        if (len == 0) {
            valid = false;
            p++;
            continue;
        }
        if (len == 1 && subject_separator(*p)) {
            gap = true;
            p++;
            continue;
        }
        if (gap && out->len > start) {
            if (chars + 1 >= max_chars)
                break;   /* no room for a word after the space */
            buf_putc(out, ' ');
            chars++;
        }
        gap = false;
        buf_append(out, p, len);
        chars++;
        p += len;
    }
    if (out->len == start)
        buf_puts(out, "Order");
    return valid;
}

/* netaddr: see include/netaddr.h. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define NETADDR_TEXT_MAX 64   /* an IPv6 literal with a /prefix fits */

static bool parse_ip(const char *s, netaddr_cidr_t *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || *s == '\0' || strlen(s) >= NETADDR_TEXT_MAX)
        return false;
    if (inet_pton(AF_INET, s, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
        return true;
    }
    if (strchr(s, '%') == NULL && inet_pton(AF_INET6, s, out->addr) == 1) {   /* no zone ids */
        out->family = AF_INET6;
        out->prefix = 128;
        return true;
    }
    return false;
}

/* ::ffff:a.b.c.d is a.b.c.d. */
static void unmap_v4(netaddr_cidr_t *ip)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (ip->family == AF_INET6 && !memcmp(ip->addr, mapped, sizeof mapped)) {
        memmove(ip->addr, ip->addr + 12, 4);
        memset(ip->addr + 4, 0, 12);
        ip->family = AF_INET;
        ip->prefix = 32;
    }
}

bool netaddr_is_ip(const char *s)
{
    netaddr_cidr_t ip;
    return parse_ip(s, &ip);
}

static bool parse_cidr(const char *item, netaddr_cidr_t *out)
{
    char text[NETADDR_TEXT_MAX];
    const char *slash = strchr(item, '/');
    size_t n = slash ? (size_t)(slash - item) : strlen(item);
    unsigned prefix = 0, max;
    if (n == 0 || n >= sizeof text)
        return false;
    memcpy(text, item, n);
    text[n] = '\0';
    if (!parse_ip(text, out))
        return false;
    max = out->family == AF_INET ? 32 : 128;
    if (!slash)
        return true;
    if (slash[1] == '\0' || strlen(slash + 1) > 3)
        return false;
    for (const char *p = slash + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        prefix = prefix * 10 + (unsigned)(*p - '0');
    }
    if (prefix > max)
        return false;
    out->prefix = prefix;
    return true;
}

static bool is_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

pg_err netaddr_list_parse(const char *text, netaddr_list_t *out, buf_t *err)
{
    const char *p = text ? text : "";
    memset(out, 0, sizeof *out);
    while (*p) {
        char item[NETADDR_TEXT_MAX];
        size_t n = 0;
        netaddr_cidr_t c, *grown;
        while (is_sep(*p))
            p++;
        while (p[n] && !is_sep(p[n]))
            n++;
        if (n == 0)
            break;
        if (n >= sizeof item || (memcpy(item, p, n), item[n] = '\0', !parse_cidr(item, &c))) {
            buf_printf(err, "'%.*s' is not an IP address or CIDR range", (int)(n > 80 ? 80 : n), p);
            netaddr_list_free(out);
            return PG_ERR_BAD_INPUT;
        }
        grown = realloc(out->items, (out->count + 1) * sizeof *grown);
        if (!grown) {
            netaddr_list_free(out);
            return PG_ERR_NOMEM;
        }
        out->items = grown;
        out->items[out->count++] = c;
        p += n;
    }
    return PG_OK;
}

void netaddr_list_free(netaddr_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static bool in_range(const netaddr_cidr_t *range, const netaddr_cidr_t *ip)
{
    unsigned full = range->prefix / 8, rest = range->prefix % 8;
    if (range->family != ip->family)
        return false;
    if (memcmp(range->addr, ip->addr, full))
        return false;
    if (rest == 0)
        return true;
    return ((range->addr[full] ^ ip->addr[full]) & (unsigned char)(0xFF << (8 - rest))) == 0;
}

bool netaddr_list_contains(const netaddr_list_t *l, const char *ip)
{
    netaddr_cidr_t a;
    if (!l || !parse_ip(ip, &a))
        return false;
    unmap_v4(&a);
    for (size_t i = 0; i < l->count; i++) {
        netaddr_cidr_t range = l->items[i];
        if (range.prefix >= 96) {   /* a ::ffff:a.b.c.d/96+ range is an IPv4 one */
            unmap_v4(&range);
            if (range.family == AF_INET)
                range.prefix = l->items[i].prefix - 96;
        }
        if (in_range(&range, &a))
            return true;
    }
    return false;
}

/* The hop ending at end (exclusive) in "a, b, c": trimmed, as a string. */
static const char *hop_before(arena_t *a, const char *start, const char **end)
{
    const char *e = *end, *b;
    while (e > start && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    b = e;
    while (b > start && b[-1] != ',')
        b--;
    *end = b > start ? b - 1 : start;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    return arena_strndup(a, b, (size_t)(e - b));
}

const char *netaddr_client(arena_t *a, const netaddr_list_t *trusted, const char *remote_addr,
                           const char *forwarded_for)
{
    const char *client = remote_addr, *end;
    if (!remote_addr || !forwarded_for || !trusted || trusted->count == 0 ||
        !netaddr_list_contains(trusted, remote_addr))
        return remote_addr;
    end = forwarded_for + strlen(forwarded_for);
    while (end > forwarded_for) {
        const char *hop = hop_before(a, forwarded_for, &end);
        if (!hop || !netaddr_is_ip(hop))
            break;   /* garbage: believe no further than the last trusted hop */
        client = hop;
        if (!netaddr_list_contains(trusted, hop))
            break;
    }
    return client;
}

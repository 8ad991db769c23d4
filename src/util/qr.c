/* qr: see include/qr.h. */
#include "qr.h"

#include <errno.h>
#include <qrencode.h>
#include <string.h>

#define QR_QUIET 4

pg_err qr_svg(const char *text, int pixels, buf_t *out)
{
    QRcode *code;
    int size, total;
    if (!text || !*text)
        return PG_ERR_BAD_INPUT;
    code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    if (!code)
        return errno == ERANGE ? PG_ERR_TOO_LARGE : PG_ERR_NOMEM;
    size = code->width;
    total = size + 2 * QR_QUIET;
    buf_printf(out,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"qr\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code\">"
               "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
               pixels, pixels, total, total, total, total);
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            /* Bit 0 of each byte is the module's colour (1 = dark). */
            if (code->data[y * size + x] & 1)
                buf_printf(out, "M%d %dh1v1h-1z", x + QR_QUIET, y + QR_QUIET);
        }
    }
    buf_puts(out, "\"/></svg>");
    QRcode_free(code);
    return out->failed ? PG_ERR_NOMEM : PG_OK;
}

/* qr: QR codes as inline SVG (the only libqrencode user). One <path> of
 * unit squares, scaled by the viewBox, with a 4-module quiet zone. */
#ifndef QR_H
#define QR_H
#include "buf.h"
#include "pg_err.h"

/* Appends an <svg> element encoding text (8-bit mode, error correction M).
 * PG_ERR_TOO_LARGE when text does not fit a QR code. */
pg_err qr_svg(const char *text, int pixels, buf_t *out);

#endif

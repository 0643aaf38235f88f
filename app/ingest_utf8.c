/* Text decoding for the ingestion layer: sniffing (binary data, encoding) and the block
 * decoder (UTF-8 validation with U+FFFD replacement, CP1252/Latin-1 -> UTF-8, CRLF -> LF).
 *
 * The decoder copies 8 ASCII bytes at a time until it meets a byte that needs attention
 * (non-ASCII, CR, NUL), so clean ASCII text costs about one load and one store per 8 bytes.
 *
 * Encodings: the first 64 KiB decide (ing_sniff_text): a BOM, or valid multi-byte UTF-8
 * sequences at least a quarter as many as invalid bytes -> UTF-8 (invalid bytes become
 * U+FFFD); invalid bytes only -> CP1252; pure ASCII -> undecided. ING_ENC_UNDECIDED (nothing but
 * ASCII seen yet) switches to CP1252 at the first byte that is not valid UTF-8, and to UTF-8
 * at the first valid multi-byte sequence; both are exact, since all output so far was ASCII.
 * CP1252 covers Latin-1 (its 0x80-0x9F block holds the curly quotes and dashes Windows text
 * uses; the 5 bytes CP1252 leaves undefined become U+FFFD and count as invalid). */
#include "ingest_int.h"
#include <string.h>

static const uint16_t cp1252_80[32] = {
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
    0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
};

/* Valid UTF-8 sequence at p? >0: its length; 0: a valid prefix cut by the end of the data;
 * <0: invalid, -k = length of the maximal invalid subpart (replaced by one U+FFFD). */
static int u8seq(const uint8_t *p, size_t avail) {
    uint8_t c = p[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0; else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90; else if (c == 0xF4) hi = 0x8F;
    } else return -1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= avail) return 0;
        if (p[i] < lo || p[i] > hi) return -i;
        lo = 0x80; hi = 0xBF;
    }
    return need + 1;
}

static inline char *put_cp(char *o, unsigned cp) {
    if (cp < 0x80) { *o++ = (char)cp; }
    else if (cp < 0x800) { *o++ = (char)(0xC0 | cp >> 6); *o++ = (char)(0x80 | (cp & 0x3F)); }
    else {
        *o++ = (char)(0xE0 | cp >> 12); *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline int has_zero(uint64_t w) { return ((w - ONES) & ~w & HIGHS) != 0; }

size_t ing_decode(ing_dec *d, const uint8_t *in, size_t n, int final, char *out, size_t *used) {
    const uint8_t *p = in, *end = in + n;
    char *o = out;
    while (p < end) {
        while (end - p >= 8) {               /* fast path: 8 plain ASCII bytes */
            uint64_t w;
            memcpy(&w, p, 8);
            if ((w & HIGHS) || has_zero(w) || has_zero(w ^ (ONES * '\r'))) break;
            memcpy(o, &w, 8);
            p += 8; o += 8;
        }
        if (p >= end) break;
        uint8_t c = *p;
        if (c < 0x80) {
            if (c == '\r') {
                if (p + 1 < end) {
                    if (p[1] == '\n') { *o++ = '\n'; p += 2; } else { *o++ = '\r'; p++; }
                    continue;
                }
                if (!final) break;           /* a CR at the end: wait for the next byte */
                *o++ = '\r'; p++;
                continue;
            }
            if (c == 0) { d->nul++; o = put_cp(o, 0xFFFD); p++; continue; }
            *o++ = (char)c; p++;
            continue;
        }
        if (d->enc == ING_ENC_CP1252) {
            unsigned cp = c >= 0xA0 ? c : cp1252_80[c - 0x80];
            if (cp == 0xFFFD) d->invalid++;
            o = put_cp(o, cp); p++;
            continue;
        }
        int k = u8seq(p, (size_t)(end - p));
        if (k > 0) {
            memcpy(o, p, (size_t)k); o += k; p += k;
            d->enc = ING_ENC_UTF8;
            continue;
        }
        if (k == 0 && !final) break;         /* incomplete sequence at the end */
        if (d->enc == ING_ENC_UNDECIDED) {   /* first non-UTF-8 byte in ASCII-so-far data */
            d->enc = ING_ENC_CP1252;
            continue;
        }
        d->invalid++;
        o = put_cp(o, 0xFFFD);
        p += k == 0 ? (size_t)(end - p) : (size_t)-k;
    }
    *used = (size_t)(p - in);
    return (size_t)(o - out);
}

const char *ing_sniff_text(const uint8_t *p, size_t n, int at_eof, int *enc) {
    *enc = ING_ENC_UNDECIDED;
    if (n >= 3 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h')
        return "bzip2-compressed data is not supported (decompress it first)";
    if (n >= 6 && !memcmp(p, "\xFD" "7zXZ\0", 6))
        return "xz-compressed data is not supported (decompress it first)";
    if (n >= 4 && !memcmp(p, "\x28\xB5\x2F\xFD", 4))
        return "zstd-compressed data is not supported (decompress it first)";
    if (n >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF)))
        return "UTF-16 text is not supported (convert it to UTF-8)";
    if (n >= 5 && !memcmp(p, "%PDF-", 5)) return "PDF is not supported (binary file)";
    if (memchr(p, 0, n)) return "binary file (NUL bytes)";
    size_t ctrl = 0, mb = 0, bad = 0, i = 0;
    int bom = n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF;
    if (bom) i = 3;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' &&
                 c != 0x1B) || c == 0x7F)
                ctrl++;
            i++;
            continue;
        }
        int k = u8seq(p + i, n - i);
        if (k > 0) { mb++; i += (size_t)k; continue; }
        if (k == 0 && !at_eof) break;
        bad++;
        i += k == 0 ? n - i : (size_t)-k;
    }
    if (ctrl * 16 > n) return "binary file (control characters)";
    /* valid multi-byte sequences hardly ever occur by chance in CP1252 text */
    if (bom || (mb && mb * 4 >= bad)) *enc = ING_ENC_UTF8;
    else *enc = bad ? ING_ENC_CP1252 : ING_ENC_UNDECIDED;
    return NULL;
}

size_t ing_utf8_cut(const char *s, size_t n) {
    size_t k = n;
    /* step back over continuation bytes (at most 3) to the lead byte */
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((uint8_t)s[i - 1] & 0xC0) == 0x80) { i--; back++; }
    if (i == 0) return n;                 /* no lead byte: not UTF-8, cut anywhere */
    uint8_t lead = (uint8_t)s[i - 1];
    if (lead < 0xC0) return n;            /* ASCII before the continuation bytes (invalid) */
    int len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (back + 1 < len) k = i - 1;        /* the sequence is cut: drop it */
    return k;
}

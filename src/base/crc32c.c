/*
 * crc32c.c - CRC-32C, hardware (SSE4.2) and slicing-by-8 software paths.
 */
#include "base/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/*
 * The hardware path runs three independent crc32 chains over three adjacent blocks of
 * CRC32C_BLOCK bytes (the instruction has a 3-cycle latency but issues every cycle), then joins
 * them: crc(A|B|C) = shift(crc(A), 2 blocks) ^ shift(crc(B), 1 block) ^ crc(C), where shift(r, n)
 * is the register after n zero bytes. shift is linear in r, so it is four table lookups.
 */
#define CRC32C_BLOCK 1024
static uint32_t shift_tab[2][4][256]; /* [0]: one block, [1]: two blocks */

static void table_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int t = 1; t < 8; t++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[t][n] = c;
        }
    }
}

/* Register after n zero bytes starting from r (raw register, no pre/post inversion). */
static uint32_t zeros(uint32_t r, size_t n)
{
    while (n--)
        r = table[0][r & 0xff] ^ (r >> 8);
    return r;
}

static void shift_init(void)
{
    for (int which = 0; which < 2; which++) {
        uint32_t basis[32];
        for (int bit = 0; bit < 32; bit++)
            basis[bit] = zeros(1u << bit, (size_t)CRC32C_BLOCK * (size_t)(which + 1));
        for (int k = 0; k < 4; k++) {
            for (uint32_t v = 0; v < 256; v++) {
                uint32_t x = 0;
                for (int b = 0; b < 8; b++)
                    if (v & (1u << b))
                        x ^= basis[8 * k + b];
                shift_tab[which][k][v] = x;
            }
        }
    }
}

static void all_tables_init(void)
{
    table_init();
    shift_init();
}

static uint32_t shift(int which, uint32_t r)
{
    return shift_tab[which][0][r & 0xff] ^ shift_tab[which][1][(r >> 8) & 0xff] ^
           shift_tab[which][2][(r >> 16) & 0xff] ^ shift_tab[which][3][r >> 24];
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    pthread_once(&table_once, all_tables_init);
    crc = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* little-endian hosts only (x86-64, aarch64) */
        uint32_t lo = (uint32_t)w ^ crc, hi = (uint32_t)(w >> 32);
        crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
              table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
              table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                             size_t len)
{
    const unsigned char *p = buf;
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    while (len >= 3 * CRC32C_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < CRC32C_BLOCK; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, p + i, 8);
            memcpy(&w1, p + CRC32C_BLOCK + i, 8);
            memcpy(&w2, p + 2 * CRC32C_BLOCK + i, 8);
            c = __builtin_ia32_crc32di(c, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        c = shift(1, (uint32_t)c) ^ shift(0, (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * CRC32C_BLOCK;
        len -= 3 * CRC32C_BLOCK;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    static int have_hw = -1;
    if (have_hw < 0) {
        pthread_once(&table_once, all_tables_init);
        __builtin_cpu_init();
        have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    return have_hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
#else
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    return crc32c_sw(crc, buf, len);
}
#endif

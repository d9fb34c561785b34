/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by Kafka's
 * RecordBatch v2 and by every checksum tern writes to disk.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a slicing-by-8 table otherwise.
 */
#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC of buf, continuing from crc (0 to start). crc32c("123456789") == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The same with the table implementation only; tests compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif

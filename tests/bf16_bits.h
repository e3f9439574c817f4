/* bf16_bits.h - bf16 on the host, as the GPU rounds it: the 16 bits of a
 * float rounded to nearest even (NaN stays NaN), and back. Shared by the
 * host emulators (tests/unit/emu_cuda.h) and the kernel labs. */
#ifndef TTT_BF16_BITS_H
#define TTT_BF16_BITS_H

#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline float bf16_value(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif

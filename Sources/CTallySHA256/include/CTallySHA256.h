#ifndef CTALLY_SHA256_H
#define CTALLY_SHA256_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 of the concatenation of up to three byte ranges (a null pointer with length 0 is an empty
/// range), written to `out` (32 bytes). The context lives on the stack: no allocation per hash.
void tally_sha256(const void *a, size_t a_length, const void *b, size_t b_length,
                  const void *c, size_t c_length, uint8_t out[32]);

#endif

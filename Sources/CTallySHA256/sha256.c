// SHA-256 for the log's hot paths (record hashes, body digests, Merkle nodes), through OpenSSL's
// libcrypto (Debian's libssl-dev). swift-crypto's SHA256 allocates and zeroes a context object per
// hash, which costs more than hashing the 65 to 200 bytes a log hashes at a time; here the context is a
// stack value. The SHA256_Init family is deprecated in OpenSSL 3 in favour of EVP, whose per-call
// method fetch is slower still for inputs this small; it remains supported, and SHA-256 is SHA-256:
// the tests check these digests against swift-crypto's and RFC 9162's vectors.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include "CTallySHA256.h"

void tally_sha256(const void *a, size_t a_length, const void *b, size_t b_length,
                  const void *c, size_t c_length, uint8_t out[32]) {
    SHA256_CTX context;
    SHA256_Init(&context);
    if (a_length > 0) SHA256_Update(&context, a, a_length);
    if (b_length > 0) SHA256_Update(&context, b, b_length);
    if (c_length > 0) SHA256_Update(&context, c, c_length);
    SHA256_Final(out, &context);
}

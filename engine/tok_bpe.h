/* Byte-level BPE (tokenizer.ggml.model = "gpt2"): GPT-2 byte<->unicode mapping,
 * merge ranks in a hash table keyed by token-id pairs, the pre-tokenizer of each
 * common tokenizer.ggml.pre value (hand-written splitters for the GPT-2 / Llama 3 /
 * Qwen2 / StarCoder rules, PCRE2 with UCP+JIT for the others), user-defined
 * (non-control) added tokens matched leftmost-longest in the text, and a word->ids
 * cache. Control tokens are never produced from text.
 *
 * A bpe_model is NOT safe for concurrent bpe_encode calls (scratch buffers and
 * the cache are mutated); tokenizer.c serializes them with a mutex. */
#ifndef CR_TOK_BPE_H
#define CR_TOK_BPE_H
#include <stddef.h>
#include <stdint.h>
#include "gguf.h"

/* llama.cpp token types (tokenizer.ggml.token_type). */
enum { TOKT_UNDEF = 0, TOKT_NORMAL = 1, TOKT_UNKNOWN = 2, TOKT_CONTROL = 3,
       TOKT_USER = 4, TOKT_UNUSED = 5, TOKT_BYTE = 6 };

typedef struct bpe_model bpe_model;

/* tokens: the n strings of tokenizer.ggml.tokens (normal tokens in the byte-level
 * alphabet, others as raw text); types: token types after the caller's
 * normalization (only TOKT_NORMAL tokens take part in merges, TOKT_USER tokens are
 * matched in text, everything else is never produced from text); merges: the
 * "A B" strings of tokenizer.ggml.merges, rank = index; pre: tokenizer.ggml.pre
 * (NULL = default). An unknown pre prints a warning naming it on stderr and uses
 * the GPT-2 rule. Copies everything it needs. NULL + message on error. */
bpe_model *bpe_load(const gguf_str *tokens, const uint8_t *types, uint32_t n_tokens,
                    const gguf_str *merges, uint64_t n_merges, const char *pre,
                    int32_t unk_id, char *err, size_t errlen);
void bpe_free(bpe_model *m);
/* Appends the ids of text (plain text: never a control token). 0, or -1 with err. */
int bpe_encode(bpe_model *m, const char *text, size_t len,
               int32_t **ids, size_t *n, size_t *cap, char *err, size_t errlen);
/* Canonical name of the pre-tokenizer rule in use ("gpt2", "llama3", "qwen2",
 * "starcoder", "falcon", "deepseek-llm", "deepseek-coder"). */
const char *bpe_pre_rule(const bpe_model *m);
/* Number of merges that were usable (both halves and the result in the vocab). */
uint64_t bpe_n_merges(const bpe_model *m);

/* Byte-level alphabet -> raw bytes: every character of the GPT-2 byte alphabet
 * becomes its byte, any other character is copied as UTF-8. out needs n bytes.
 * Returns the bytes written. */
size_t bpe_unmap(const char *s, size_t n, char *out);

/* Lenient UTF-8 decoding at s[i]: the code point (0x110000 for a malformed byte) and
 * its length in bytes (1 for a malformed byte). */
size_t bpe_u8dec(const uint8_t *s, size_t n, size_t i, uint32_t *cp);

/* Unicode class of a code point as the pre-tokenizers see it (bit 1 = \p{L},
 * 2 = \p{N}, 4 = White_Space). Thread-safe. */
unsigned bpe_ucls(uint32_t cp);

/* A bounded bytes -> ids cache (open addressing; cleared when full).
 * Not thread-safe. tcache_get's pointer is valid until the next tcache_put. */
typedef struct tcache tcache;
tcache *tcache_new(void);
void tcache_free(tcache *c);
int tcache_get(tcache *c, const void *key, size_t n, const int32_t **ids, size_t *n_ids);
void tcache_put(tcache *c, const void *key, size_t n, const int32_t *ids, size_t n_ids);
#define TCACHE_MAX_KEY 255

/* Appends k ids to a growable array; 0 or -1 (out of memory). */
int tok_ids_push(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k);
#endif

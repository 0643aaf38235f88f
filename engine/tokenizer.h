/* Tokenizers of cascade-read: sentencepiece (tokenizer.ggml.model = "llama": Llama 2,
 * Mistral, Phi-3) through libsentencepiece, and byte-level BPE
 * (tokenizer.ggml.model = "gpt2": Llama 3, Qwen2.5, SmolLM2, DeepSeek, ...) in C.
 *
 * Plain text only: tok_encode never produces a control token (<s>, </s>,
 * <|im_end|>, [INST], <|eot_id|>, ...), whatever the text contains; control tokens
 * come from the chat template (chat.h) by id. User-defined vocabulary entries that
 * are not control-like (e.g. MPT's whitespace runs, DeepSeek's single letters) are
 * matched in text as the models were trained; a user-defined entry that looks like
 * markup (<...> or [...], no spaces) is treated as a control token.
 *
 * Sentencepiece goes through libsentencepiece (tok_spm.cpp); the ModelProto is built
 * from the GGUF metadata (identity normalizer, no NFKC) or read from a tokenizer.model.
 * Long texts are cut where no piece can span and encoded segment by segment through a
 * cache (same ids as one Encode() call; CR_TOK_SPM_DIRECT=1 disables this).
 * Byte-level BPE pre-tokenizer rules by tokenizer.ggml.pre: gpt2 (default, gpt-2, gpt2,
 * gpt-neox, mpt, olmo, phi-2, ...), llama3 (llama3, llama-v3, llama-bpe, falcon3, dbrx,
 * smaug-bpe), qwen2 (qwen2, deepseek-r1-qwen, stablelm2, megrez), starcoder (smollm,
 * starcoder, refact, command-r, codeshell, exaone, minerva-7b), falcon, deepseek-llm,
 * deepseek-coder; an unknown value warns on stderr and uses gpt2.
 *
 * Thread safety: tok_encode may be called from any thread; calls on one tokenizer
 * are serialized by an internal mutex (the word cache is shared). Everything else
 * (tok_piece, tok_decode, tok_special, getters) is read-only and may run
 * concurrently with anything but tok_free.
 *
 * Round trip: for byte-level BPE, tok_decode(tok_encode(x)) == x for any bytes x
 * that the vocabulary has byte tokens for: all 256 in GPT-2; vocabularies trained by
 * Hugging Face lack a few ASCII control bytes and the bytes that never occur in UTF-8
 * (C0 C1 F5..FF), which encode to nothing, as in Hugging Face tokenizers.
 * For sentencepiece with add-space-prefix (the default), encoding adds one "▁" in
 * front of the text and tok_decode removes one leading space from the first text
 * piece, so tok_decode(tok_encode(x)) == x for valid UTF-8 x without U+2581 (▁
 * decodes to a space, and sentencepiece turns invalid UTF-8 into U+FFFD). */
#ifndef CR_TOKENIZER_H
#define CR_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "gguf.h"

typedef struct cr_tokenizer cr_tokenizer;

enum { TOK_SPM = 1, TOK_BPE = 2 };

/* Token types (llama.cpp numbering, also tokenizer.ggml.token_type). */
enum { TOK_T_NORMAL = 1, TOK_T_UNKNOWN = 2, TOK_T_CONTROL = 3, TOK_T_USER = 4,
       TOK_T_UNUSED = 5, TOK_T_BYTE = 6 };

/* Loads the tokenizer described by the GGUF metadata (works with a vocab-only
 * GGUF). spm_model_path != NULL: use that sentencepiece tokenizer.model instead of
 * the GGUF vocabulary (g may then be NULL; with g, its BOS/EOS/EOT ids are used
 * when they fit the model). Copies what it needs: g may be closed afterwards.
 * NULL + a one-line message in err on failure. */
cr_tokenizer *tok_load(const gguf_file *g, const char *spm_model_path, char *err, size_t errlen);
void tok_free(cr_tokenizer *t);

int tok_kind(const cr_tokenizer *t);               /* TOK_SPM or TOK_BPE */
const char *tok_kind_name(const cr_tokenizer *t);  /* "spm" or "bpe" */
/* BPE: pre-tokenizer rule in use ("gpt2", "llama3", "qwen2", "starcoder", "falcon",
 * "deepseek-llm", "deepseek-coder"); SPM: "spm" or "spm-file". */
const char *tok_pre_name(const cr_tokenizer *t);
int tok_n_vocab(const cr_tokenizer *t);
int32_t tok_bos(const cr_tokenizer *t);            /* -1 when the model has none */
int32_t tok_eos(const cr_tokenizer *t);
int32_t tok_eot(const cr_tokenizer *t);            /* tokenizer.ggml.eot_token_id or -1 */
int32_t tok_unk(const cr_tokenizer *t);
int tok_add_bos(const cr_tokenizer *t);            /* does the model want BOS in front of a prompt */
int tok_add_eos(const cr_tokenizer *t);
int tok_add_space_prefix(const cr_tokenizer *t);   /* SPM dummy prefix */

/* Appends the ids of text[0..len) encoded as plain text (no BOS) to *ids, growing
 * it with realloc (*cap = allocated entries). 0, or -1 (see tok_last_error). */
int tok_encode(cr_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, size_t *cap);
/* Message of the last failed tok_encode. */
const char *tok_last_error(const cr_tokenizer *t);

/* Streaming decode: the raw bytes of one token (a byte token gives 1 byte that may
 * be part of a UTF-8 character: buffer before printing). Control tokens give
 * nothing. after_bos != 0 for the first token after BOS / start of text: with SPM
 * add-space-prefix its leading space is dropped (like sentencepiece). Writes at
 * most cap bytes (no NUL) and returns the full length (> cap: call again with a
 * bigger buffer); 0 for an id out of range. */
size_t tok_piece(const cr_tokenizer *t, int32_t id, int after_bos, char *buf, size_t cap);

/* Whole-sequence decode into a malloc'd NUL-terminated string (*out_len excludes
 * the NUL). Control tokens are skipped; with SPM add-space-prefix the leading space
 * of the first text piece is dropped. 0, or -1 (id out of range / out of memory). */
int tok_decode(const cr_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *out_len);
enum { TOK_DECODE_SPECIAL = 1,   /* render control tokens as their text (<|im_end|>) */
       TOK_DECODE_KEEP_SPACE = 2 /* keep the SPM leading space */ };
int tok_decode_ex(const cr_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                  char **out, size_t *out_len);

/* Id of a control / user-defined / unknown token by its exact text ("<|im_end|>",
 * "[INST]", "</s>"), -1 if the vocabulary has none. */
int32_t tok_special(const cr_tokenizer *t, const char *text);
int tok_token_type(const cr_tokenizer *t, int32_t id);   /* TOK_T_*, 0 out of range */
int tok_is_control(const cr_tokenizer *t, int32_t id);
/* The token's vocabulary string (GGUF form: "Ġthe", "▁the", "<0x0A>"), not NUL-terminated. */
const char *tok_token_text(const cr_tokenizer *t, int32_t id, size_t *len);

/* CLI helpers for `cascade-read --model M [--tokenizer F] --tokenize TEXT` (prints
 * the ids separated by spaces and a newline, no BOS) and `--detokenize "ID ID ..."`
 * (ids separated by spaces or commas; prints the text, control tokens as their
 * text, then a newline). 0, or -1 with a one-line message in err. */
int tok_cli_tokenize(const char *model_path, const char *text, FILE *out, char *err, size_t n);
int tok_cli_detokenize(const char *model_path, const char *ids, FILE *out, char *err, size_t n);
int tok_cli_tokenize_ex(const char *model_path, const char *spm_model_path, const char *text,
                        FILE *out, char *err, size_t n);
int tok_cli_detokenize_ex(const char *model_path, const char *spm_model_path, const char *ids,
                          FILE *out, char *err, size_t n);
#endif

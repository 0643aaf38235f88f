/* Minimal C interface over libsentencepiece (the only C++ in cascade-read).
 * A processor is loaded from the bytes of a serialized ModelProto (what a
 * tokenizer.model file holds, or what tokenizer.c builds from GGUF metadata).
 * spm_encode is const and may be called from several threads at once
 * (SentencePieceProcessor::Encode is const). */
#ifndef CR_TOK_SPM_H
#define CR_TOK_SPM_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct spm_proc spm_proc;

/* Returns NULL with a one-line message in err on failure. */
spm_proc *spm_load_proto(const void *data, size_t n, char *err, size_t errlen);
void spm_free(spm_proc *p);
int spm_n_pieces(const spm_proc *p);
/* Encodes text (no BOS/EOS) and appends the ids to *ids (grown with realloc).
 * Returns 0, or -1 (out of memory / sentencepiece error, message in err). */
int spm_encode(const spm_proc *p, const char *text, size_t n,
               int32_t **ids, size_t *n_ids, size_t *cap, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif

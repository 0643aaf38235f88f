/* Chat templates: llama2, llama3, chatml (Qwen2/2.5, SmolLM2), mistral (v3), phi3, and
 * raw (no markup, for base models). The template's control tokens are looked up by
 * id (tok_special) and never come from text; message contents are always encoded as
 * plain text (tok_encode), so a message holding "<|im_end|>" cannot close a turn.
 *
 * Formats (| marks a control token, "..." text encoded with tok_encode):
 *   llama2   per turn: BOS "[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {answer} " EOS
 *            (Meta's reference chat_completion: contents stripped, system folded into the
 *            first user message, each turn its own BOS ... EOS; ends with "[/INST]")
 *   mistral  BOS |[INST]| "{user}" |[/INST]| "{answer}" EOS ...; the system prompt goes in
 *            front of the last user message, "{sys}\n\n{user}" (mistral_common v3).
 *            Without an [INST] control token (v1 vocabularies) "[INST] ... [/INST]" is text.
 *   llama3   BOS |<|start_header_id|>| "{role}" |<|end_header_id|>| "\n\n{content}" |<|eot_id|>| ...
 *            generation prompt: |<|start_header_id|>| "assistant" |<|end_header_id|>| "\n\n"
 *   chatml   |<|im_start|>| "{role}\n{content}" |<|im_end|>| "\n" ...;
 *            generation prompt |<|im_start|>| "assistant\n"; BOS only if the model asks for
 *            it; a default system prompt found in the GGUF template (Qwen2.5's
 *            "You are Qwen, ...", SmolLM2's) is used when the caller gives none.
 *   phi3     BOS? |<|system|>| "\n{sys}" |<|end|>| "\n" |<|user|>| "\n{user}" |<|end|>| "\n"
 *            |<|assistant|>| "\n{answer}" |<|end|>| "\n" ...; generation prompt |<|assistant|>| "\n"
 *            (no <|system|> token: the system prompt is put in front of the first user message)
 *   raw      BOS? then the contents joined by "\n\n"
 * Sentencepiece text segments get the dummy-prefix space like llama.cpp does for text
 * after a special token. */
#ifndef CR_CHAT_H
#define CR_CHAT_H
#include <stddef.h>
#include <stdint.h>
#include "gguf.h"
#include "tokenizer.h"

typedef enum { CHAT_RAW = 0, CHAT_LLAMA2, CHAT_LLAMA3, CHAT_CHATML, CHAT_MISTRAL, CHAT_PHI3 } chat_kind;

typedef struct {
    const char *role;      /* "system", "user" or "assistant" */
    const char *content;   /* NUL-terminated UTF-8 */
} chat_msg;

#define CHAT_MAX_STOP 8
typedef struct {
    chat_kind kind;
    int32_t stop[CHAT_MAX_STOP];    /* generation ends at any of these ids */
    int n_stop;
    char default_system[512];       /* chatml: the template's default system prompt, "" if none */
} chat_template;

/* Picks the template: override name if given ("llama2", "llama3", "chatml", "mistral",
 * "phi3", "raw"; error for any other), else from the markers of tokenizer.chat_template
 * (<|im_start|> -> chatml, <|start_header_id|> -> llama3, <|user|>+<|end|> -> phi3,
 * [INST] with <<SYS>> -> llama2, [INST] -> mistral), else from the vocabulary's control
 * tokens and general.architecture, else raw (llama2 for a sentencepiece Llama vocabulary).
 * g may be NULL. 0, or -1 with a one-line message. */
int chat_template_detect(const cr_tokenizer *tok, const gguf_file *g, const char *name,
                         chat_template *out, char *err, size_t errlen);
/* Only the marker rules on a template text (-1 when no marker matches). */
int chat_kind_from_template_text(const char *tmpl);
const char *chat_kind_name(chat_kind k);
int chat_kind_from_name(const char *name);   /* -1 unknown */

/* Appends the ids of the conversation (BOS included where the format has it) to *ids.
 * add_generation_prompt: end with the assistant header so the model answers. Roles
 * other than system/user/assistant are an error. 0, or -1 with a message. */
int chat_encode(cr_tokenizer *tok, const chat_template *tmpl, const chat_msg *msgs, int n,
                int add_generation_prompt, int32_t **ids, size_t *n_ids, size_t *cap,
                char *err, size_t errlen);
/* Is id a stop token of this template (EOS, EOT, <|eot_id|>, <|im_end|>, <|end|>, ...). */
int chat_is_stop(const cr_tokenizer *tok, const chat_template *tmpl, int32_t id);
#endif

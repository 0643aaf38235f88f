/* A loaded model, its tokenizer and inference state, set up from the options;
 * feeds token streams through the cache in strides. */
#ifndef CR_SESSION_H
#define CR_SESSION_H
#include "cli.h"
#include "model.h"
#include "state.h"
#include "tokenizer.h"

typedef struct {
    cr_model model;
    cr_tokenizer *tok;
    cr_state st;
    int stride;
    int has_state;
    double t_feed; int64_t n_fed;     /* prefill time and tokens */
    const cr_opts *o;
} cr_session;

/* Loads model (+ state when with_state). Returns 0 or an exit code, error printed. */
int session_open(cr_session *s, const cr_opts *o, int with_state);
void session_close(cr_session *s);
/* Feeds n tokens in chunks of the stride; logits of the last token into
 * last_logits when non-NULL. 0, or -1 with err. */
int session_feed(cr_session *s, const int32_t *tok, size_t n, float *last_logits, char *err, size_t errlen);
double now_sec(void);
/* --device: 1 when the options ask for the GPU (cuda, or auto with a usable GPU). */
int session_wants_gpu(const cr_opts *o);
#endif

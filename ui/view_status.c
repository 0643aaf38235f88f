/* Status bar (model, device, tokens read / total, tokens/s, ETA, cache fill per cascade,
 * memory) and the input line. */
#include "text.h"
#include "tui.h"
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_kb(tui *t) {
    double now = mono();
    if (now - t->rss_t > 0.5 || t->rss_kb == 0) {
        FILE *f = fopen("/proc/self/statm", "r");
        long pages = 0, res = 0;
        if (f) { if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0; fclose(f); }
        t->rss_kb = res * (sysconf(_SC_PAGESIZE) / 1024);
        t->rss_t = now;
    }
    return t->rss_kb;
}

static void human(char *b, size_t n, double v) {
    if (v >= 1e6) snprintf(b, n, "%.1fM", v / 1e6);
    else if (v >= 1e4) snprintf(b, n, "%.0fk", v / 1e3);
    else if (v >= 1e3) snprintf(b, n, "%.1fk", v / 1e3);
    else snprintf(b, n, "%.0f", v);
}

void ui_status_text(const tui *t, char *buf, size_t n) {
    const wk_status *s = &t->st;
    size_t o = 0;
#define ADD(...) do { if (o < n) { int k_ = snprintf(buf + o, n - o, __VA_ARGS__); if (k_ > 0) o += (size_t)k_; } } while (0)
    if (!t->have_st) { snprintf(buf, n, " starting"); return; }
    const char *state = s->busy ? "answering" : s->reading == 1 ? "reading" : s->reading == 2 ? "stopped" : "read";
    ADD(" %s  %s %s", state, s->model[0] ? s->model : "model", s->device[0] ? s->device : "cpu");
    if (s->have_prog) {
        char a[32], b[32];
        human(a, sizeof a, (double)s->prog.doc_tokens);
        if (s->prog.bytes_total && s->prog.bytes_done && !s->prog.done) {
            double est = (double)s->prog.doc_tokens * (double)s->prog.bytes_total / (double)s->prog.bytes_done;
            human(b, sizeof b, est);
            ADD("  %s/~%s tok %d%%", a, b, (int)(100.0 * (double)s->prog.bytes_done / (double)s->prog.bytes_total));
        } else ADD("  %s tok", a);
        if (s->reading == 1 && s->prog.tok_per_s > 0) {
            human(a, sizeof a, s->prog.tok_per_s);
            ADD("  %s t/s", a);
            if (s->prog.eta_s >= 0) {
                long e = (long)(s->prog.eta_s + 0.5);
                if (e >= 3600) ADD(" ETA %ld:%02ld:%02ld", e / 3600, e / 60 % 60, e % 60);
                else ADD(" ETA %ld:%02ld", e / 60, e % 60);
            }
        }
    }
    if (s->C > 0 && s->W > 0) {
        ADD("  ");
        static const char *bars[] = { " ", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588" };
        for (int i = 0; i < s->C && i < CR_MAX_CASCADES; i++) {
            int lv = (int)((double)s->stored[i] / s->W * 8 + 0.5);
            if (lv > 8) lv = 8;
            if (s->stored[i] > 0 && lv == 0) lv = 1;
            if (t->utf8) ADD("%s", bars[lv]); else ADD("%d", lv > 7 ? 9 : lv);
        }
    }
    long kb = t->rss_kb;
    if (kb > 0) ADD("  %.0fM", kb / 1024.0);
#undef ADD
}

void ui_draw_status(tui *t, int y, int w) {
    rss_kb(t);
    char buf[512];
    ui_status_text(t, buf, sizeof buf);
    int a = ui_attr(t, UA_STATUS);
    ui_fill(y, 0, w, a);
    ui_put(y, 0, w, buf, strlen(buf), a);
}

void ui_draw_input(tui *t, int y, int w) {
    if (t->quit_ask) {
        ui_printf(y, 0, w, ui_attr(t, UA_USER), "Quit? s: save to %s and quit, q: quit without saving, Esc: stay",
                  t->save_path);
        return;
    }
    if (t->complete_list[0]) {      /* candidates of the last Tab, above the input line */
        ui_fill(y - 1, 0, w, ui_attr(t, UA_NOTE));
        ui_put(y - 1, 0, w, t->complete_list, strlen(t->complete_list), ui_attr(t, UA_NOTE));
    }
    const char *prompt = t->ctrlc_armed ? "(Ctrl-C again to quit) > " : "> ";
    int pw = ui_put(y, 0, w, prompt, strlen(prompt), ui_attr(t, UA_USER));
    size_t start; int cc;
    in_view(&t->in, w - pw, &start, &cc);
    ui_put(y, pw, w - pw, t->in.buf + start, t->in.len - start, ui_attr(t, UA_NORMAL));
    move(y, pw + cc);
}

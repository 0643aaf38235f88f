// extern "C" shim over libsentencepiece: load a serialized ModelProto, encode to ids.
#include "tok_spm.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

struct spm_proc {
    sentencepiece::SentencePieceProcessor sp;
};

static void set_err(char *err, size_t errlen, const char *what, const std::string &msg) {
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, msg.c_str());
}

extern "C" spm_proc *spm_load_proto(const void *data, size_t n, char *err, size_t errlen) {
    spm_proc *p = new (std::nothrow) spm_proc;
    if (!p) { set_err(err, errlen, "sentencepiece", "out of memory"); return nullptr; }
    try {
        auto st = p->sp.LoadFromSerializedProto(std::string_view(static_cast<const char *>(data), n));
        if (!st.ok()) {
            set_err(err, errlen, "sentencepiece", st.ToString());
            delete p;
            return nullptr;
        }
    } catch (const std::exception &e) {
        set_err(err, errlen, "sentencepiece", e.what());
        delete p;
        return nullptr;
    }
    return p;
}

extern "C" void spm_free(spm_proc *p) { delete p; }

extern "C" int spm_n_pieces(const spm_proc *p) { return p ? p->sp.GetPieceSize() : 0; }

extern "C" int spm_encode(const spm_proc *p, const char *text, size_t n,
                          int32_t **ids, size_t *n_ids, size_t *cap, char *err, size_t errlen) {
    try {
        std::vector<int> out;
        auto st = p->sp.Encode(std::string_view(text, n), &out);
        if (!st.ok()) { set_err(err, errlen, "sentencepiece encode", st.ToString()); return -1; }
        if (*n_ids + out.size() > *cap) {
            size_t nc = *cap ? *cap : 64;
            while (nc < *n_ids + out.size()) nc *= 2;
            int32_t *r = static_cast<int32_t *>(realloc(*ids, nc * sizeof(int32_t)));
            if (!r) { set_err(err, errlen, "sentencepiece encode", "out of memory"); return -1; }
            *ids = r; *cap = nc;
        }
        for (int id : out) (*ids)[(*n_ids)++] = id;
    } catch (const std::exception &e) {
        set_err(err, errlen, "sentencepiece encode", e.what());
        return -1;
    }
    return 0;
}

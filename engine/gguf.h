/* GGUF v2/v3 reader over mmap. Every offset, size and count is checked against
 * the file size; all strings point into the mapping (not NUL-terminated).
 * Errors come back as a return code and a one-line message in g->err. */
#ifndef CR_GGUF_H
#define CR_GGUF_H
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12, GGUF_T_COUNT
};

/* ggml tensor types (numbering of ggml.h). */
enum ggml_type {
    GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6, GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8, GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10, GGML_TYPE_Q3_K = 11, GGML_TYPE_Q4_K = 12, GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14, GGML_TYPE_Q8_K = 15, GGML_TYPE_BF16 = 30, GGML_TYPE_COUNT = 40
};

typedef struct { const char *s; uint64_t n; } gguf_str;

typedef struct {
    gguf_str key;
    uint32_t type;        /* enum gguf_vtype */
    uint32_t arr_type;    /* element type when type == ARRAY */
    uint64_t arr_n;       /* element count when type == ARRAY */
    const uint8_t *val;   /* the value (or first array element) in the mapping */
    uint64_t val_size;    /* bytes of the value */
} gguf_kv;

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[4];       /* ne[0] = row length (fastest), unused dims = 1 */
    uint32_t type;        /* enum ggml_type */
    uint64_t offset;      /* relative to the data section */
    uint64_t nbytes;
    const void *data;     /* in the mapping */
} gguf_tensor;

typedef struct {
    char path[512];
    const uint8_t *map;   /* whole file */
    size_t size;
    int mapped;           /* 1 when map came from mmap (gguf_close unmaps) */
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_off;
    char err[640];
} gguf_file;

/* Open and validate. Returns 0, or -1 with g->err = "PATH: problem". */
int gguf_open(gguf_file *g, const char *path);
/* Parse a buffer (for the fuzzer and tests); the buffer must outlive g. */
int gguf_parse(gguf_file *g, const void *buf, size_t size, const char *name);
void gguf_close(gguf_file *g);

const gguf_kv *gguf_find(const gguf_file *g, const char *key);
const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name);

/* Scalar getters: return 1 when found with a numeric type convertible to the
 * requested one, 0 otherwise (out untouched). */
int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out);
int gguf_get_f64(const gguf_file *g, const char *key, double *out);
int gguf_get_bool(const gguf_file *g, const char *key, int *out);
/* String value; 1 when found. */
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out);
/* Copies a string value into buf (NUL-terminated, truncated); 1 when found. */
int gguf_get_cstr(const gguf_file *g, const char *key, char *buf, size_t bufsz);

/* Array access. Element i of a numeric array as double / int64. */
double gguf_arr_f64(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i);
/* All strings of a string array: out must hold kv->arr_n entries. */
void gguf_arr_strs(const gguf_kv *kv, gguf_str *out);

int gguf_str_eq(gguf_str a, const char *b);
const char *ggml_type_name(uint32_t type);
/* Block size (elements) and bytes per block; 0 for unknown types. */
uint64_t ggml_blck_size(uint32_t type);
uint64_t ggml_type_size(uint32_t type);
/* Bytes of a row of n elements (n must be a multiple of the block size). */
uint64_t ggml_row_size(uint32_t type, uint64_t n);

/* Fingerprint: FNV-1a 64 over the metadata and tensor infos (not the data). */
uint64_t gguf_fingerprint(const gguf_file *g);

#endif

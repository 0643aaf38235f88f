#!/usr/bin/python3
"""GGUF v2/v3 writer and reader in pure Python + numpy (little-endian only).

Independent of the C engine: written from the GGUF spec (ggml/docs/gguf.md).

File layout:
    u32 magic "GGUF" (bytes 47 47 55 46), u32 version, u64 n_tensors, u64 n_kv
    n_kv x { gguf_string key, u32 value_type, value }
    n_tensors x { gguf_string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
    zero padding up to general.alignment (default 32)
    tensor data; each tensor starts at data_start + offset, offsets are multiples of the
    alignment, tensors are zero-padded to the alignment.
gguf_string = u64 length + UTF-8 bytes (no NUL). Arrays = u32 elem type + u64 count + elems.
(v1 used u32 counts; v2 and v3 both use u64 and are byte-identical for little-endian files.)

Writer usage:
    w = GGUFWriter(path, version=3, alignment=32)
    w.add("general.architecture", "llama")                 # type inferred (str)
    w.add("llama.block_count", 2, GGUF.UINT32)              # explicit type
    w.add("tokenizer.ggml.tokens", ["a", "b"])              # array of strings
    w.add("tokenizer.ggml.scores", [0.0, 1.0], GGUF.ARRAY, GGUF.FLOAT32)
    w.add_tensor("token_embd.weight", raw_bytes_or_array, ne=[dim, vocab], ggml_type=8)
    w.write()

Reader usage:
    g = GGUFFile(path)       # g.kv (dict key -> python value), g.kv_types, g.tensors (dict)
    t = g.tensors["output_norm.weight"]; t.ne, t.type, t.data (uint8 numpy view, memmapped)
"""
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"


class GGUF:
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# struct format of each scalar value type
_SCALAR_FMT = {
    GGUF.UINT8: "<B", GGUF.INT8: "<b", GGUF.UINT16: "<H", GGUF.INT16: "<h",
    GGUF.UINT32: "<I", GGUF.INT32: "<i", GGUF.FLOAT32: "<f", GGUF.BOOL: "<?",
    GGUF.UINT64: "<Q", GGUF.INT64: "<q", GGUF.FLOAT64: "<d",
}
_SCALAR_NP = {
    GGUF.UINT8: "<u1", GGUF.INT8: "<i1", GGUF.UINT16: "<u2", GGUF.INT16: "<i2",
    GGUF.UINT32: "<u4", GGUF.INT32: "<i4", GGUF.FLOAT32: "<f4", GGUF.BOOL: "<u1",
    GGUF.UINT64: "<u8", GGUF.INT64: "<i8", GGUF.FLOAT64: "<f8",
}

# ggml tensor types: id -> (name, block elements, block bytes)
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    30: ("BF16", 1, 2),
}
GGML_TYPE_ID = {v[0]: k for k, v in GGML_TYPES.items()}


def ggml_nbytes(ggml_type, n_elems):
    name, blk, bsz = GGML_TYPES[ggml_type]
    if n_elems % blk:
        raise ValueError("%s: %d elements is not a multiple of the block size %d" % (name, n_elems, blk))
    return n_elems // blk * bsz


def _pad(n, align):
    return (n + align - 1) // align * align


def _enc_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _infer_type(v):
    if isinstance(v, bool):
        return GGUF.BOOL
    if isinstance(v, (int, np.integer)):
        return GGUF.INT32 if -2**31 <= int(v) < 2**31 else GGUF.INT64
    if isinstance(v, (float, np.floating)):
        return GGUF.FLOAT32
    if isinstance(v, (str, bytes)):
        return GGUF.STRING
    if isinstance(v, (list, tuple, np.ndarray)):
        return GGUF.ARRAY
    raise TypeError("cannot infer GGUF type of %r" % (v,))


def _enc_scalar(vtype, v):
    if vtype == GGUF.STRING:
        return _enc_str(v)
    return struct.pack(_SCALAR_FMT[vtype], v)


def _enc_value(vtype, v, arr_type=None):
    if vtype != GGUF.ARRAY:
        return _enc_scalar(vtype, v)
    v = list(v) if not isinstance(v, np.ndarray) else v
    if arr_type is None:
        arr_type = _infer_type(v[0]) if len(v) else GGUF.INT32
        if arr_type == GGUF.ARRAY:
            raise ValueError("nested arrays need explicit types")
    out = [struct.pack("<IQ", arr_type, len(v))]
    if arr_type == GGUF.STRING:
        out.extend(_enc_str(s) for s in v)
    elif arr_type == GGUF.ARRAY:
        # nested arrays: each element is (elem_type, values)
        for et, vals in v:
            out.append(_enc_value(GGUF.ARRAY, vals, et))
    else:
        out.append(np.asarray(v).astype(_SCALAR_NP[arr_type]).tobytes())
    return b"".join(out)


class GGUFWriter:
    def __init__(self, path, version=3, alignment=32, write_alignment_key=True):
        if version not in (2, 3):
            raise ValueError("only GGUF v2 and v3 are supported")
        if alignment <= 0 or alignment % 8:
            raise ValueError("alignment must be a positive multiple of 8")
        self.path = path
        self.version = version
        self.alignment = alignment
        self.kv = []          # (key, vtype, value, arr_type)
        self.tensors = []     # (name, ne, ggml_type, bytes)
        if write_alignment_key:
            self.add("general.alignment", alignment, GGUF.UINT32)

    def add(self, key, value, vtype=None, arr_type=None):
        if any(k == key for k, _, _, _ in self.kv):
            raise ValueError("duplicate key " + key)
        vtype = _infer_type(value) if vtype is None else vtype
        self.kv.append((key, vtype, value, arr_type))

    def add_tensor(self, name, data, ne, ggml_type):
        """data: raw bytes / uint8 array already in ggml block layout, or a float array
        (only for F32) ; ne: list with ne[0] = row length (fastest dimension)."""
        if isinstance(data, np.ndarray) and data.dtype != np.uint8:
            if ggml_type == 0:
                data = np.ascontiguousarray(data, dtype="<f4")
            elif ggml_type == 1 and data.dtype == np.float16:
                data = np.ascontiguousarray(data, dtype="<f2")
            else:
                raise ValueError("%s: pass packed bytes for type %d" % (name, ggml_type))
        b = bytes(memoryview(np.ascontiguousarray(data)).cast("B")) if isinstance(data, np.ndarray) else bytes(data)
        n = int(np.prod(ne))
        if len(b) != ggml_nbytes(ggml_type, n):
            raise ValueError("%s: %d bytes, expected %d for ne=%s type %d"
                             % (name, len(b), ggml_nbytes(ggml_type, n), list(ne), ggml_type))
        if any(t[0] == name for t in self.tensors):
            raise ValueError("duplicate tensor " + name)
        self.tensors.append((name, [int(x) for x in ne], int(ggml_type), b))

    def header_bytes(self):
        out = [GGUF_MAGIC, struct.pack("<IQQ", self.version, len(self.tensors), len(self.kv))]
        for key, vtype, value, arr_type in self.kv:
            out.append(_enc_str(key))
            out.append(struct.pack("<I", vtype))
            out.append(_enc_value(vtype, value, arr_type))
        off = 0
        for name, ne, ty, b in self.tensors:
            out.append(_enc_str(name))
            out.append(struct.pack("<I", len(ne)))
            out.append(struct.pack("<%dQ" % len(ne), *ne))
            out.append(struct.pack("<IQ", ty, off))
            off = _pad(off + len(b), self.alignment)
        return b"".join(out)

    def write(self):
        hdr = self.header_bytes()
        with open(self.path, "wb") as f:
            f.write(hdr)
            f.write(b"\0" * (_pad(len(hdr), self.alignment) - len(hdr)))
            for name, ne, ty, b in self.tensors:
                f.write(b)
                f.write(b"\0" * (_pad(len(b), self.alignment) - len(b)))


# --------------------------------------------------------------------------- reader

class GGUFTensor:
    __slots__ = ("name", "ne", "type", "offset", "nbytes", "data")

    @property
    def type_name(self):
        return GGML_TYPES.get(self.type, ("type%d" % self.type,))[0]

    @property
    def n_elems(self):
        return int(np.prod(self.ne))

    def __repr__(self):
        return "GGUFTensor(%s, ne=%s, %s)" % (self.name, self.ne, self.type_name)


class GGUFFile:
    def __init__(self, path):
        self.path = path
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        mv = memoryview(self.buf)
        self.pos = 4
        if bytes(mv[0:4]) != GGUF_MAGIC:
            raise ValueError("%s: not a GGUF file" % path)
        self.version, = self._u("<I")
        if self.version not in (2, 3):
            raise ValueError("%s: unsupported GGUF version %d" % (path, self.version))
        n_tensors, n_kv = self._u("<QQ")
        self.kv = {}
        self.kv_types = {}
        for _ in range(n_kv):
            key = self._str()
            vt, = self._u("<I")
            val, at = self._value(vt)
            self.kv[key] = val
            self.kv_types[key] = (vt, at)
        self.alignment = int(self.kv.get("general.alignment", 32))
        self.tensors = {}
        self.tensor_order = []
        for _ in range(n_tensors):
            t = GGUFTensor()
            t.name = self._str()
            nd, = self._u("<I")
            t.ne = list(self._u("<%dQ" % nd))
            t.type, t.offset = self._u("<IQ")
            t.nbytes = ggml_nbytes(t.type, t.n_elems)
            self.tensors[t.name] = t
            self.tensor_order.append(t.name)
        self.data_start = _pad(self.pos, self.alignment)
        for t in self.tensors.values():
            a = self.data_start + t.offset
            if t.offset % self.alignment or a + t.nbytes > len(self.buf):
                raise ValueError("%s: tensor %s out of bounds / misaligned" % (path, t.name))
            t.data = self.buf[a:a + t.nbytes]

    def _u(self, fmt):
        n = struct.calcsize(fmt)
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def _str(self):
        n, = self._u("<Q")
        s = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return s.decode("utf-8", errors="surrogateescape")

    def _value(self, vt):
        if vt == GGUF.STRING:
            return self._str(), None
        if vt == GGUF.ARRAY:
            at, n = self._u("<IQ")
            if at == GGUF.STRING:
                return [self._str() for _ in range(n)], at
            if at == GGUF.ARRAY:
                return [self._value(GGUF.ARRAY)[0] for _ in range(n)], at
            dt = np.dtype(_SCALAR_NP[at])
            arr = np.frombuffer(self.buf, dtype=dt, count=n, offset=self.pos).copy()
            self.pos += n * dt.itemsize
            if at == GGUF.BOOL:
                arr = arr.astype(bool)
            return arr, at
        v, = self._u(_SCALAR_FMT[vt])
        return v, None

    def get(self, key, default=None):
        return self.kv.get(key, default)


def _main(argv):
    """Dump a GGUF file's metadata and tensor list."""
    if len(argv) != 2:
        print("usage: gguf_writer.py FILE.gguf   (dumps metadata and tensors)")
        return 2
    g = GGUFFile(argv[1])
    print("GGUF v%d, %d kv, %d tensors, alignment %d, data at %d"
          % (g.version, len(g.kv), len(g.tensors), g.alignment, g.data_start))
    for k, v in g.kv.items():
        if isinstance(v, (list, np.ndarray)) and len(v) > 8:
            v = "[%s, ... (%d)]" % (", ".join(repr(x) for x in list(v[:8])), len(v))
        print("  %s = %s" % (k, v))
    for name in g.tensor_order:
        t = g.tensors[name]
        print("  %-32s %-5s ne=%s off=%d" % (name, t.type_name, t.ne, t.offset))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

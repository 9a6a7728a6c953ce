"""A small GGUF reader for brisk's tests, written from the GGUF spec (ggml docs/gguf.md) and the block
layouts of ggml-common.h with the standard library only -- independent of brisk's C++ reader, so
the files `brisk export` writes are checked by a second implementation: metadata as Python values,
tensor infos, and tensors decoded to floats (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)."""
import array
import struct

# gguf_type (metadata value types) -> struct format; 8 STRING and 9 ARRAY are handled apart.
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 8: "Q8_0", 12: "Q4_K", 14: "Q6_K", 30: "BF16"}
# ggml type -> (values per block, bytes per block)
BLOCKS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18), 12: (256, 144), 14: (256, 210)}


class Cursor:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def value(self, kind):
        if kind == 8:
            return self.string()
        if kind == 9:
            element, n = self.take("I"), self.take("Q")
            return [self.value(element) for _ in range(n)]
        return self.take(SCALAR[kind])


def half(bits):
    return struct.unpack("<e", struct.pack("<H", bits))[0]


def decode_q8_0(raw, n):
    out = []
    for b in range(n // 32):
        blk = raw[34 * b:34 * b + 34]
        d = half(struct.unpack_from("<H", blk)[0])
        out.extend(q * d for q in struct.unpack_from("<32b", blk, 2))
    return out


def decode_q4_0(raw, n):
    out = []
    for b in range(n // 32):
        blk = raw[18 * b:18 * b + 18]
        d = half(struct.unpack_from("<H", blk)[0])
        qs = blk[2:]
        out.extend(((qs[i] & 15) - 8) * d for i in range(16))  # elements 0..15: low nibbles
        out.extend(((qs[i] >> 4) - 8) * d for i in range(16))  # 16..31: high nibbles
    return out


def k_scale_min(scales, j):
    """The 6-bit (scale, min) of sub-block j of a Q4_K super-block (12 packed bytes)."""
    if j < 4:
        return scales[j] & 63, scales[j + 4] & 63
    return (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4)


def decode_q4_k(raw, n):
    out = []
    for b in range(n // 256):
        blk = raw[144 * b:144 * b + 144]
        d, dmin = half(struct.unpack_from("<H", blk)[0]), half(struct.unpack_from("<H", blk, 2)[0])
        scales, qs = blk[4:16], blk[16:]
        for chunk in range(4):  # 64 values: low nibbles of 32 bytes, then their high nibbles
            for sub, shift in ((2 * chunk, 0), (2 * chunk + 1, 4)):
                sc, m = k_scale_min(scales, sub)
                out.extend(d * sc * ((qs[32 * chunk + l] >> shift) & 15) - dmin * m for l in range(32))
    return out


def decode_q6_k(raw, n):
    out = []
    for b in range(n // 256):
        blk = raw[210 * b:210 * b + 210]
        ql, qh, scales = blk[0:128], blk[128:192], struct.unpack_from("<16b", blk, 192)
        d = half(struct.unpack_from("<H", blk, 208)[0])
        for h in range(2):  # 128 values per half
            values = [0] * 128
            for l in range(32):
                low, high = ql[64 * h + l], ql[64 * h + l + 32]
                bits = qh[32 * h + l]
                values[l] = (low & 15) | ((bits & 3) << 4)
                values[l + 32] = (high & 15) | (((bits >> 2) & 3) << 4)
                values[l + 64] = (low >> 4) | (((bits >> 4) & 3) << 4)
                values[l + 96] = (high >> 4) | (((bits >> 6) & 3) << 4)
            out.extend(d * scales[8 * h + i // 16] * (values[i] - 32) for i in range(128))
    return out


def decode(kind, raw, n):
    if kind == 0:
        return array.array("f", raw[:4 * n]).tolist()
    if kind == 1:
        return list(struct.unpack(f"<{n}e", raw[:2 * n]))
    if kind == 30:
        return array.array("f", array.array("I", [h << 16 for h in array.array("H", raw[:2 * n])]).tobytes()).tolist()
    return {8: decode_q8_0, 2: decode_q4_0, 12: decode_q4_k, 14: decode_q6_k}[kind](raw, n)


class GgufFile:
    """metadata: {key: value}; tensors: {name: (shape slowest-first, ggml type, raw bytes)}."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        c = Cursor(data)
        magic, version = c.take("4s"), None
        assert magic == b"GGUF", f"{path}: not a GGUF file"
        version, n_tensors, n_kv = c.take("I"), c.take("Q"), c.take("Q")
        assert version == 3, version
        self.metadata = {}
        for _ in range(n_kv):
            key = c.string()
            self.metadata[key] = c.value(c.take("I"))
        infos = []
        for _ in range(n_tensors):
            name, dims = c.string(), c.take("I")
            ne = [c.take("Q") for _ in range(dims)]
            kind, offset = c.take("I"), c.take("Q")
            infos.append((name, list(reversed(ne)), kind, offset))
        alignment = self.metadata.get("general.alignment", 32)
        start = (c.pos + alignment - 1) // alignment * alignment
        self.tensors = {}
        for name, shape, kind, offset in infos:
            n = 1
            for d in shape:
                n *= d
            per_block, block_bytes = BLOCKS[kind]
            nbytes = n // per_block * block_bytes
            self.tensors[name] = (shape, kind, data[start + offset:start + offset + nbytes])

    def values(self, name):
        shape, kind, raw = self.tensors[name]
        n = 1
        for d in shape:
            n *= d
        return decode(kind, raw, n)

    def type_name(self, name):
        return TYPE_NAMES[self.tensors[name][1]]

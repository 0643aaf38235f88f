#!/usr/bin/python3
"""Builds a vocab-only GGUF (0 tensors) from a Hugging Face byte-level BPE tokenizer.json.

    /usr/bin/python3 tests/tools/mkvocab_hf.py TOKENIZER_JSON OUT.gguf [--pre smollm]
        [--config config.json] [--chat-template smollm2|none|FILE] [--name NAME]
        [--extra-control "<|a|>,<|b|>"] [--bos TEXT] [--eos TEXT] [--eot TEXT] [--add-bos]

Writes the keys llama.cpp's converter writes for such a vocabulary:
tokenizer.ggml.model = "gpt2", tokenizer.ggml.pre, tokenizer.ggml.tokens (by id),
tokenizer.ggml.token_type (1 normal, 3 control = added special token, 4 user-defined =
added non-special token), tokenizer.ggml.merges ("A B"), bos/eos/padding ids (from
config.json or --bos/--eos), add_bos_token, and tokenizer.chat_template.
--extra-control appends control tokens after the vocabulary (used by the tests to make a
Llama 3 style vocabulary with <|start_header_id|> etc. out of SmolLM2's BPE).
Standard library only; its own minimal GGUF v3 writer.
"""
import argparse
import json
import os
import struct
import sys

# SmolLM2-135M-Instruct's chat template (tokenizer_config.json of the Instruct model).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9


def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def enc_kv(key, vtype, value, arr_type=None):
    out = enc_str(key) + struct.pack("<I", vtype)
    if vtype == T_STRING:
        out += enc_str(value)
    elif vtype == T_UINT32:
        out += struct.pack("<I", value)
    elif vtype == T_INT32:
        out += struct.pack("<i", value)
    elif vtype == T_BOOL:
        out += struct.pack("<B", 1 if value else 0)
    elif vtype == T_ARRAY:
        out += struct.pack("<IQ", arr_type, len(value))
        if arr_type == T_STRING:
            out += b"".join(enc_str(v) for v in value)
        elif arr_type == T_INT32:
            out += struct.pack("<%di" % len(value), *value)
        elif arr_type == T_FLOAT32:
            out += struct.pack("<%df" % len(value), *value)
        else:
            raise ValueError(arr_type)
    else:
        raise ValueError(vtype)
    return out


def write_gguf(path, kvs, alignment=32):
    body = b"".join(enc_kv(*kv) for kv in kvs)
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    data = head + body
    data += b"\0" * ((-len(data)) % alignment)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tokenizer_json")
    ap.add_argument("out")
    ap.add_argument("--pre", default="smollm")
    ap.add_argument("--config")
    ap.add_argument("--chat-template", default="smollm2")
    ap.add_argument("--name", default="hf-vocab")
    ap.add_argument("--extra-control", default="")
    ap.add_argument("--bos")
    ap.add_argument("--eos")
    ap.add_argument("--eot")
    ap.add_argument("--add-bos", action="store_true")
    a = ap.parse_args(argv)

    with open(a.tokenizer_json, encoding="utf-8") as f:
        tj = json.load(f)
    model = tj["model"]
    if model.get("type") != "BPE":
        sys.exit("mkvocab_hf: %s: model type %r is not BPE" % (a.tokenizer_json, model.get("type")))
    vocab = dict(model["vocab"])
    types = {}
    for t in tj.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
        types[t["id"]] = 3 if t.get("special") else 4
    n = max(vocab.values()) + 1
    tokens = [None] * n
    for s, i in vocab.items():
        tokens[i] = s
    ttype = []
    for i in range(n):
        if tokens[i] is None:
            tokens[i] = "[PAD%d]" % i
            ttype.append(4)
        else:
            ttype.append(types.get(i, 1))
    for s in [x for x in a.extra_control.split(",") if x]:
        if s in vocab:
            continue
        vocab[s] = len(tokens)
        tokens.append(s)
        ttype.append(3)
    merges = []
    for m in model["merges"]:
        merges.append(m if isinstance(m, str) else "%s %s" % (m[0], m[1]))

    def tid(text):
        if text is None:
            return None
        if text not in vocab:
            sys.exit("mkvocab_hf: token %r not in the vocabulary" % text)
        return vocab[text]

    bos, eos, eot = tid(a.bos), tid(a.eos), tid(a.eot)
    if a.config:
        with open(a.config, encoding="utf-8") as f:
            cfg = json.load(f)
        if bos is None and isinstance(cfg.get("bos_token_id"), int):
            bos = cfg["bos_token_id"]
        if eos is None and isinstance(cfg.get("eos_token_id"), int):
            eos = cfg["eos_token_id"]
    tmpl = None
    if a.chat_template == "smollm2":
        tmpl = SMOLLM2_TEMPLATE
    elif a.chat_template != "none":
        with open(a.chat_template, encoding="utf-8") as f:
            tmpl = f.read()

    kvs = [
        ("general.architecture", T_STRING, "llama"),
        ("general.name", T_STRING, a.name),
        ("llama.vocab_size", T_UINT32, len(tokens)),
        ("tokenizer.ggml.model", T_STRING, "gpt2"),
        ("tokenizer.ggml.pre", T_STRING, a.pre),
        ("tokenizer.ggml.tokens", T_ARRAY, tokens, T_STRING),
        ("tokenizer.ggml.token_type", T_ARRAY, ttype, T_INT32),
        ("tokenizer.ggml.merges", T_ARRAY, merges, T_STRING),
    ]
    if bos is not None:
        kvs.append(("tokenizer.ggml.bos_token_id", T_UINT32, bos))
    if eos is not None:
        kvs.append(("tokenizer.ggml.eos_token_id", T_UINT32, eos))
        kvs.append(("tokenizer.ggml.padding_token_id", T_UINT32, eos))
    if eot is not None:
        kvs.append(("tokenizer.ggml.eot_token_id", T_UINT32, eot))
    kvs.append(("tokenizer.ggml.add_bos_token", T_BOOL, bool(a.add_bos)))
    kvs.append(("tokenizer.ggml.add_eos_token", T_BOOL, False))
    if tmpl:
        kvs.append(("tokenizer.chat_template", T_STRING, tmpl))
    write_gguf(a.out, kvs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

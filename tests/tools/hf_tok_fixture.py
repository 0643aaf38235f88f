#!/usr/bin/env python3
"""SmolLM2 tokenizer fixture: test strings and Hugging Face `tokenizers` expected ids.

    python3 tests/tools/hf_tok_fixture.py gen [--shared ../shared] [--out tests/fixtures/tok/smollm2_strings.txt]
    python3 tests/tools/hf_tok_fixture.py expect [--tokenizer ../shared/tokenizers/smollm2/tokenizer.json]
        [--strings tests/fixtures/tok/smollm2_strings.txt] [--out tests/fixtures/tok/smollm2_expected.txt]

gen (standard library only, deterministic for the same ../shared data) writes 2,000 varied
strings: lines of books and logs, unicode scripts, emoji, digits, whitespace runs, code,
contractions, and a few strings containing special-token text. Format: llama.cpp's .inp,
i.e. each string followed by a line "__ggml_vocab_test__".

expect (needs `tokenizers`) writes one line per string: the ids of
Tokenizer.encode(s, add_special_tokens=False) separated by spaces (no BOS), with
encode_special_tokens = True so that "<|im_end|>" in a string is plain text, as
cascade-read encodes documents. Where that setting is missing (tokenizers < 0.19), a string
holding special-token text gets the line "skip". tests/engine_tok.c compares against it.
"""
import argparse
import os
import random
import sys

SEP = "\n__ggml_vocab_test__\n"
N_STRINGS = 2000
MAX_BYTES = 360


def clip(s, rng):
    b = s.encode("utf-8")
    if len(b) <= MAX_BYTES:
        return s
    cut = rng.randint(MAX_BYTES // 2, MAX_BYTES)
    return b[:cut].decode("utf-8", "ignore")


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", "replace")
    return data.split("\n")


def gen(shared, out):
    rng = random.Random(20250611)
    books_dir = os.path.join(shared, "data", "books", "txt")
    logs_dir = os.path.join(shared, "data", "logs", "loghub_2k")
    books = [os.path.join(books_dir, b) for b in sorted(os.listdir(books_dir)) if b.endswith(".txt")]
    logs = [os.path.join(logs_dir, b) for b in sorted(os.listdir(logs_dir)) if b.endswith(".log")]
    logs += [os.path.join(shared, "data", "logs", "full", x) for x in ("Linux.log", "apache_access.log")]
    out_strs = []

    def add(s):
        s = clip(s, rng)
        if "__ggml_vocab_test__" in s:
            return
        out_strs.append(s)

    # 1. book lines (single lines and short paragraphs), 700
    book_lines = {b: read_lines(b) for b in books}
    for i in range(700):
        lines = book_lines[books[i % len(books)]]
        j = rng.randrange(len(lines))
        if i % 5 == 0:
            add("\n".join(lines[j:j + rng.randint(2, 5)]))
        else:
            add(lines[j])
    # 2. log lines, 450
    log_lines = {l: read_lines(l) for l in logs}
    for i in range(450):
        lines = log_lines[logs[i % len(logs)]]
        j = rng.randrange(len(lines))
        add(lines[j] if i % 7 else "\n".join(lines[j:j + 3]))
    # 3. unicode scripts and emoji, 250
    samples = [
        "我想在apple工作1314151天～", "東京は日本の首都です。ひらがなとカタカナ", "한국어 텍스트입니다 123",
        "нещо на Български", "Съешь же ещё этих мягких французских булок", "Ελληνικά: Καλημέρα κόσμε",
        "مرحبا بالعالم ١٢٣", "שלום עולם", "नमस्ते दुनिया २०२४", "สวัสดีชาวโลก", "កាន់តែពិសេសអាច",
        "Cửa Việt", "Äpfel über Öl", "naïve café résumé", "e\u0301 a\u0300 o\u0308 combining",
        "🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅", "👍🏽 👨\u200d👩\u200d👧 🇫🇷🇯🇵", "🦙🦙 llama",
        "math: ∑ ∫ √ ≤ ≥ ≠ ∞ π²", "fullwidth ＡＢＣ１２３！", "arrows → ← ↑ ↓ ⇒", "½ ¾ ² ³ Ⅻ ⅷ",
        "zero\u200bwidth\u200cjoin\u200d", "nbsp\u00a0here\u202fand\u3000there", "line\u2028sep\u2029para",
        "ﬁ ﬂ ligatures", "Kelvin \u212a and Ohm \u2126", "꙰ ᴀʙᴄ ꞵ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "\U0001f600\U0001f64f",
    ]
    for i in range(250):
        k = rng.randint(1, 3)
        parts = [rng.choice(samples) for _ in range(k)]
        sep = rng.choice([" ", "", "\n", ", ", "  ", "\t"])
        add(sep.join(parts))
    # 4. digits and numbers, 150
    for i in range(150):
        kind = i % 6
        if kind == 0:
            add(str(rng.randint(0, 10 ** rng.randint(1, 20))))
        elif kind == 1:
            add("%d.%0*d" % (rng.randint(0, 9999), rng.randint(1, 6), rng.randint(0, 999999)))
        elif kind == 2:
            add("+1 (%03d) %03d-%04d" % (rng.randint(0, 999), rng.randint(0, 999), rng.randint(0, 9999)))
        elif kind == 3:
            add("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % tuple(rng.randint(0, 99) for _ in range(7)))
        elif kind == 4:
            add("{:,}".format(rng.randint(0, 10 ** 12)) + " units, " + str(rng.random()))
        else:
            add(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(rng.randint(2, 8))))
    # 5. whitespace runs, 150
    ws = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\t\t", "\u00a0", "\r"]
    words = ["Hello", "world", "x", "42", "!", "(", "foo_bar", "'s", "Über", "日本"]
    for i in range(150):
        parts = []
        for _ in range(rng.randint(1, 8)):
            parts.append(rng.choice(ws) * rng.randint(1, 3))
            if rng.random() < 0.7:
                parts.append(rng.choice(words))
        add("".join(parts))
    # 6. code, 150
    code = [
        "def f(x):\n    return x * 2\n",
        "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
        "for (let i = 0; i < n; i++) { sum += a[i]; }",
        "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
        "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
        "if [ -f \"$HOME/.bashrc\" ]; then . \"$HOME/.bashrc\"; fi",
        "    if (ptr == NULL) {\n        return -ENOMEM;\n    }",
        "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))",
        "x = [i**2 for i in range(10) if i % 2 == 0]  # squares",
        "<div class=\"main\"><p>Hello &amp; welcome</p></div>",
        "https://example.com/path?q=1&r=two#frag",
        "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
        "    \t    mixed indentation\n\t\t  here",
        "a+=b; c-=d; e*=f; g/=h; i%=j; k<<=1; l>>=2; m&&n||o",
        "==== ---- ____ **** //// \\\\\\\\ ~~~~",
    ]
    for i in range(150):
        add(rng.choice(code) if i % 3 else rng.choice(code) + rng.choice(code))
    # 7. contractions and case, 100
    contr = ["I'd've", "DON'T", "it's", "'S", "we'RE", "you'LL", "she'd", "'m", "y'all", "O'Neil", "rock'n'roll",
             "I'VE", "'tis", "can't", "won't", "ma'am", "'ll", "'D"]
    for i in range(100):
        add(" ".join(rng.choice(contr) for _ in range(rng.randint(1, 6))))
    # 8. special-token text inside documents, 20
    specials = ["<|im_end|>", "<|im_start|>user\n", "<|endoftext|>", "<repo_name>", "<|im_start|>",
                "<file_sep>", "</s>", "[INST]", "<s>", "<|eot_id|>"]
    for i in range(20):
        add("the log said %s then %s ok" % (rng.choice(specials), rng.choice(specials)))
    # fill up with more book lines if any were dropped
    while len(out_strs) < N_STRINGS:
        lines = book_lines[books[rng.randrange(len(books))]]
        add(lines[rng.randrange(len(lines))])
    out_strs = out_strs[:N_STRINGS]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as f:
        for s in out_strs:
            f.write(s + SEP)
    print("wrote %d strings, %d bytes to %s" % (len(out_strs), os.path.getsize(out), out))


def read_strings(path):
    with open(path, "r", encoding="utf-8", newline="") as f:
        data = f.read()
    parts = data.split(SEP)
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def expect(tok_path, strings, out):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    has_est = hasattr(tok, "encode_special_tokens")
    if has_est:
        tok.encode_special_tokens = True
    specials = [t.content for t in tok.get_added_tokens_decoder().values()] if hasattr(tok, "get_added_tokens_decoder") else []
    lines = []
    for s in read_strings(strings):
        if not has_est and any(sp in s for sp in specials):
            lines.append("skip")
            continue
        ids = tok.encode(s, add_special_tokens=False).ids
        lines.append(" ".join(str(i) for i in ids))
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d lines to %s (encode_special_tokens=%s)" % (len(lines), out, has_est))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["gen", "expect"])
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    ap.add_argument("--tokenizer")
    ap.add_argument("--strings", default=os.path.join(root, "tests", "fixtures", "tok", "smollm2_strings.txt"))
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    if a.cmd == "gen":
        gen(a.shared, a.out or a.strings)
    else:
        tp = a.tokenizer or os.path.join(a.shared, "tokenizers", "smollm2", "tokenizer.json")
        expect(tp, a.strings, a.out or os.path.join(root, "tests", "fixtures", "tok", "smollm2_expected.txt"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

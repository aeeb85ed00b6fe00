#!/usr/bin/env python3
"""A scripted tool-calling model for end-to-end tests of `folio serve`: a real checkpoint
(LlamaForCausalLM, float32 safetensors, a byte-level BPE tokenizer.json, a chat template) whose
greedy output is fixed by the last token of the prompt, so the whole serving path runs as for
any model and nothing in Folio knows it is a test.

How: one layer whose attention and MLP write nothing (o_proj, down_proj zero), a one-hot
embedding (token t -> unit vector t) and an lm_head that maps t to the next token of a script,
so the model is a bigram table. The prompt's last token picks the script: the tokenizer has
added tokens that span a question's last word and the chat template's generation prompt
("Paris?<|im_end|>\\n<|im_start|>assistant\\n"), so the question decides the answer; a tool
result ends the prompt in another added token, so the model then answers in text. Every token
of the scripts is a distinct id (a repeated piece of text is spelled with other tokens), so
each has one successor. A script's first tool-call marker is the real marker token (special for
mistral and llama3_json, as in those models), the others are spelled in text.

usage: make_tool_model.py FORMAT DIR      FORMAT: hermes | llama3_json | mistral
Writes DIR/{config,generation_config,tokenizer,tokenizer_config}.json, DIR/model.safetensors
and DIR/script.json (the questions, and what the server must answer to each).
"""
import json
import math
import os
import struct
import sys
from array import array

# ---- the chat templates (every tag trims, so the template's own layout is not output) ----

HERMES = r"""{%- if tools %}
{{- '<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- endif %}
{%- for m in messages %}
{%- if m.role == 'assistant' %}
{{- '<|im_start|>assistant\n' }}
{%- if m.content %}{{- m.content }}{%- endif %}
{%- if m.tool_calls %}{%- for tc in m.tool_calls %}
{%- if m.content or not loop.first %}{{- '\n' }}{%- endif %}
{{- '<tool_call>\n{"name": "' + tc.function.name + '", "arguments": ' + (tc.function.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}{%- endif %}
{{- '<|im_end|>\n' }}
{%- elif m.role == 'tool' %}
{{- '<|im_start|>user\n<tool_response>\n' + m.content + '\n</tool_response><|im_end|>\n' }}
{%- else %}
{{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"""

LLAMA3 = r"""{{- bos_token }}
{%- if tools %}
{{- '<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n' }}
{%- for t in tools %}{{- (t | tojson) + '\n\n' }}{%- endfor %}
{{- '<|eot_id|>' }}
{%- endif %}
{%- for m in messages %}
{%- if m.role == 'assistant' and m.tool_calls %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- for tc in m.tool_calls %}
{%- if not loop.first %}{{- '; ' }}{%- endif %}
{{- '{"name": "' + tc.function.name + '", "parameters": ' + (tc.function.arguments | tojson) + '}' }}
{%- endfor %}
{{- '<|eom_id|>' }}
{%- elif m.role == 'tool' %}
{{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + m.content + '<|eot_id|>' }}
{%- else %}
{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\n\n' + m.content + '<|eot_id|>' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"""

MISTRAL = r"""{{- bos_token }}
{%- for m in messages %}
{%- if m.role == 'user' %}
{%- if tools and loop.first %}{{- '[AVAILABLE_TOOLS]' + (tools | tojson) + '[/AVAILABLE_TOOLS]' }}{%- endif %}
{{- '[INST]' + m.content + '[/INST]' }}
{%- elif m.role == 'assistant' and m.tool_calls %}
{{- '[TOOL_CALLS][' }}
{%- for tc in m.tool_calls %}
{%- if tc.id is not defined or tc.id | length != 9 %}{{- raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}{%- endif %}
{%- if not loop.first %}{{- ', ' }}{%- endif %}
{{- '{"name": "' + tc.function.name + '", "arguments": ' + (tc.function.arguments | tojson) + ', "id": "' + tc.id + '"}' }}
{%- endfor %}
{{- ']' + eos_token }}
{%- elif m.role == 'assistant' %}
{{- m.content + eos_token }}
{%- elif m.role == 'tool' %}
{{- '[TOOL_RESULTS]{"content": ' + (m.content | tojson) + ', "call_id": "' + m.tool_call_id + '"}[/TOOL_RESULTS]' }}
{%- endif %}
{%- endfor %}"""


def call(name, city, key="arguments"):
    return '{"name": "%s", "%s": {"city": "%s"}}' % (name, key, city)


# Per format: the template, special tokens (bos, eos list, others), the text that follows a
# question's last word in the prompt, the prompt's end after a tool result, and the scripts
# (text, or ("tok", marker) for the marker token), with what the server must answer.
TOOL_RESULT = "sunny, 22 C"
ANSWER = "It is sunny in Paris."


def spec(fmt):
    if fmt == "hermes":
        eos = "<|im_end|>"
        marker = [("tok", "<tool_call>"), "\n"]
        close = ["\n", ("tok", "</tool_call>")]
        weather = marker + [call("get_weather", "Paris")] + close
        both = (["Checking both.\n", "<tool_call>\n", call("get_weather", "Paris"), "\n</tool_call>\n",
                 "<tool_call>\n", call("get_weather", "London"), "\n</tool_call>"])
        broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": }}\n</tool_call>'
        return dict(template=HERMES, bos=None, eos=[eos], specials=["<|endoftext|>", "<|im_start|>", eos],
                    plain=["<tool_call>", "</tool_call>"], after_question="<|im_end|>\n<|im_start|>assistant\n",
                    after_result=TOOL_RESULT + "\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
                    weather=weather, both=both, both_content="Checking both.", broken=broken,
                    rendered='"arguments": {"city": "Paris"}', id_len=29, end=eos, tool_end=eos)
    if fmt == "llama3_json":
        eot, eom = "<|eot_id|>", "<|eom_id|>"
        weather = [("tok", "<|python_tag|>"), call("get_weather", "Paris", "parameters")]
        both = [call("get_weather", "Paris", "parameters") + "; " + call("get_weather", "London", "parameters")]
        broken = '{"name": "get_weather", "parameters": {"city": }}'
        head = "<|start_header_id|>assistant<|end_header_id|>\n\n"
        return dict(template=LLAMA3, bos="<|begin_of_text|>", eos=[eot, eom],
                    specials=["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", eot, eom,
                              "<|python_tag|>"],
                    plain=[], after_question=eot + head, after_result=TOOL_RESULT + eot + head,
                    weather=weather, both=both, both_content=None, broken=broken,
                    rendered='"parameters": {"city": "Paris"}', id_len=29, end=eot, tool_end=eom)
    if fmt == "mistral":
        eos = "</s>"
        weather = [("tok", "[TOOL_CALLS]"), "[" + call("get_weather", "Paris") + "]"]
        both = ["Checking both.", "[TOOL_CALLS][" + call("get_weather", "Paris") + ", " +
                call("get_weather", "London") + "]"]
        broken = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": }}]'
        return dict(template=MISTRAL, bos="<s>", eos=[eos],
                    specials=["<s>", eos, "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                              "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"],
                    plain=[], after_question="[/INST]", after_result=None,
                    weather=weather, both=both, both_content="Checking both.", broken=broken,
                    rendered='"arguments": {"city": "Paris"}', id_len=9, end=eos, tool_end=eos)
    sys.exit("make_tool_model.py: unknown format " + fmt)


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()


def byte_level(text):
    return "".join(B2U[b] for b in text.encode("utf-8"))


class Vocab:
    """Byte tokens, then script pieces (each a distinct vocabulary string), then added tokens."""

    def __init__(self, reserved):
        self.vocab = {B2U[b]: b for b in range(256)}
        self.reserved = set(reserved)  # the added tokens' contents
        self.used_markers = set()

    def taken(self, text):
        s = byte_level(text)
        return s in self.vocab or s in self.reserved

    def piece(self, text):
        s = byte_level(text)
        if self.taken(text):
            raise ValueError("piece %r is not new" % text)
        self.vocab[s] = len(self.vocab)
        return ("v", s)

    def split(self, text):
        """text as new vocabulary pieces of 3 or more characters, none seen before."""
        out, i = [], 0
        while i < len(text):
            for n in range(3, len(text) - i + 1):
                if len(text) - (i + n) in (1, 2):
                    continue
                if not self.taken(text[i:i + n]):
                    break
            else:
                n = len(text) - i
            out.append(self.piece(text[i:i + n]))
            i += n
        return out

    def script(self, parts):
        """A script's tokens: ("tok", m) is the marker token m the first time, text after."""
        tokens, text = [], ""
        for p in parts:
            if isinstance(p, tuple) and p[1] not in self.used_markers:
                self.used_markers.add(p[1])
                if text:
                    tokens += self.split(text)
                    text = ""
                tokens.append(("a", p[1]))
            else:
                text += p[1] if isinstance(p, tuple) else p
        if text:
            tokens += self.split(text)
        return tokens


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, (shape, data) in tensors.items():
        raw = data.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    fmt, out = sys.argv[1], sys.argv[2]
    sp = spec(fmt)
    questions = {"weather": "What is the weather in Paris?", "both": "What is the weather in both cities?",
                 "broken": "Call it broken?", "hello": "Say hello"}
    scripts = {"weather": (sp["weather"], sp["tool_end"]), "both": (sp["both"], sp["tool_end"]),
               "broken": ([sp["broken"]], sp["end"]), "hello": (["Hello there!"], sp["end"]),
               "answer": ([ANSWER], sp["end"])}
    # added tokens: the specials, the plain markers, and one trigger per script
    triggers = {k: q.split()[-1] + sp["after_question"] for k, q in questions.items()}
    triggers["answer"] = sp["after_result"] or "[/TOOL_RESULTS]"
    added = [(t, True) for t in sp["specials"]] + [(t, False) for t in sp["plain"]]
    added += [(t, False) for k, t in triggers.items() if t not in sp["specials"]]
    v = Vocab(byte_level(c) for c, _ in added)
    chains = {k: v.script(parts) for k, (parts, _) in scripts.items()}
    ids = dict(v.vocab)
    for content, _ in added:
        assert content not in ids, content
        ids[content] = len(ids)
    V = len(ids)

    def tid(tok):
        return ids[tok[1]]

    nxt = [ids[sp["eos"][0]]] * V
    for k, chain in chains.items():
        seq = [ids[triggers[k]]] + [tid(t) for t in chain] + [ids[scripts[k][1]]]
        for a, b in zip(seq, seq[1:]):
            nxt[a] = b

    d = 64 * math.ceil(V / 64)           # hidden: a one-hot slot per token
    heads, hd, inter = 2, 32, 64
    zeros = lambda n: array("f", bytes(4 * n))
    emb, lm = zeros(V * d), zeros(V * d)
    for t in range(V):
        emb[t * d + t] = 1.0
        lm[nxt[t] * d + t] = 5.0        # logit 5 * sqrt(d) for the next token, 0 for the rest
    ones = array("f", [1.0] * d)
    if sys.byteorder != "little":
        for a in (emb, lm, ones):
            a.byteswap()
    L = "model.layers.0."
    tensors = {
        "model.embed_tokens.weight": ([V, d], emb),
        L + "input_layernorm.weight": ([d], ones),
        L + "self_attn.q_proj.weight": ([heads * hd, d], zeros(heads * hd * d)),
        L + "self_attn.k_proj.weight": ([heads * hd, d], zeros(heads * hd * d)),
        L + "self_attn.v_proj.weight": ([heads * hd, d], zeros(heads * hd * d)),
        L + "self_attn.o_proj.weight": ([d, heads * hd], zeros(d * heads * hd)),
        L + "post_attention_layernorm.weight": ([d], ones),
        L + "mlp.gate_proj.weight": ([inter, d], zeros(inter * d)),
        L + "mlp.up_proj.weight": ([inter, d], zeros(inter * d)),
        L + "mlp.down_proj.weight": ([d, inter], zeros(d * inter)),
        "model.norm.weight": ([d], ones),
        "lm_head.weight": ([V, d], lm),
    }
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    eos_ids = [ids[e] for e in sp["eos"]]
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d,
              "intermediate_size": inter, "num_hidden_layers": 1, "num_attention_heads": heads,
              "num_key_value_heads": heads, "head_dim": hd, "vocab_size": V,
              "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "hidden_act": "silu", "tie_word_embeddings": False, "eos_token_id": eos_ids,
              "torch_dtype": "float32"}
    if sp["bos"]:
        config["bos_token_id"] = ids[sp["bos"]]
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    json.dump({"eos_token_id": eos_ids}, open(os.path.join(out, "generation_config.json"), "w"))
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": ids[c], "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": s} for c, s in added],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": False, "vocab": v.vocab, "merges": []}}
    json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w"), ensure_ascii=False)
    tc = {"chat_template": sp["template"], "bos_token": sp["bos"], "eos_token": sp["eos"][0],
          "add_bos_token": False, "add_eos_token": False, "model_max_length": 4096,
          "tokenizer_class": "PreTrainedTokenizerFast"}
    json.dump(tc, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=1)

    def expect(k):
        return "".join(p[1] if isinstance(p, tuple) else p for p in scripts[k][0])
    script = {"format": fmt, "id_len": sp["id_len"], "tool_result": TOOL_RESULT, "answer": ANSWER,
              "rendered": sp["rendered"], "questions": questions,
              "triggers": {k: ids[t] for k, t in triggers.items()},
              "text": {k: expect(k) for k in scripts},
              "both_content": sp["both_content"]}
    json.dump(script, open(os.path.join(out, "script.json"), "w"), indent=1)


if __name__ == "__main__":
    main()

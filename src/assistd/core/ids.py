"""Prefixed, random object ids (``asst_…``, ``file-…``), the primary keys everywhere."""

from __future__ import annotations

import os
import secrets
import socket
import string
import uuid

_ALPHABET = string.ascii_letters + string.digits


def _token(length: int = 24) -> str:
    """``length`` characters drawn uniformly from the 62 letters and digits: the base-62
    digits of one random number below ``62 ** length`` (one call to the OS's random source,
    not one per character)."""
    value = secrets.randbelow(62**length)
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def new_id(prefix: str) -> str:
    """A new id such as ``asst_3fZ…``; ``prefix`` includes its separator."""
    return prefix + _token()


def process_tag() -> str:
    """A new name for something of this process (a worker, the stream tails): host, pid and a
    random suffix, so names stay unique across restarts and within one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


ASSISTANT = "asst_"
THREAD = "thread_"
MESSAGE = "msg_"
RUN = "run_"
STEP = "step_"
CALL = "call_"
FILE = "file-"
VECTOR_STORE = "vs_"
FILE_BATCH = "vsfb_"
PROJECT = "proj_"
API_KEY = "key_"
UPLOAD = "upload_"
UPLOAD_PART = "part_"
CONVERSATION = "conv_"
FUNCTION_CALL_ITEM = "fc_"
FUNCTION_CALL_OUTPUT_ITEM = "fco_"
CONTAINER = "cntr_"
CONTAINER_FILE = "cfile_"
RESPONSE = "resp_"
CODE_INTERPRETER_CALL_ITEM = "ci_"
FILE_SEARCH_CALL_ITEM = "fs_"
COMPACTION_ITEM = "cmp_"
REASONING_ITEM = "rs_"

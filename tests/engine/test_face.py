"""The Assistants face renders the engine's message events as the SDK's delta objects, and
links in the text become annotations."""

from __future__ import annotations

from assistd.engine import citations
from assistd.engine.events import ImagesShown, RefusalDelta, TextDelta
from assistd.engine.face import AssistantsFace

FACE = AssistantsFace()


def test_message_deltas() -> None:
    assert FACE.render(TextDelta("msg_1", 2, "Hi")) == [
        (
            "thread.message.delta",
            {
                "id": "msg_1",
                "object": "thread.message.delta",
                "delta": {
                    "content": [
                        {"index": 2, "type": "text", "text": {"value": "Hi", "annotations": []}}
                    ]
                },
            },
        )
    ]
    assert FACE.render(RefusalDelta("msg_1", 1, "No")) == [
        (
            "thread.message.delta",
            {
                "id": "msg_1",
                "object": "thread.message.delta",
                "delta": {"content": [{"index": 1, "type": "refusal", "refusal": "No"}]},
            },
        )
    ]
    ((name, data),) = FACE.render(ImagesShown("msg_1", ("file-a", "file-b")))
    assert name == "thread.message.delta"
    assert data["delta"]["content"] == [
        {"index": 0, "type": "image_file", "image_file": {"file_id": "file-a", "detail": "auto"}},
        {"index": 1, "type": "image_file", "image_file": {"file_id": "file-b", "detail": "auto"}},
    ]


def test_links_to_written_files_become_file_path_annotations() -> None:
    text = "See sandbox:/mnt/data/out.csv. And sandbox:/mnt/data/gone.txt"
    notes = citations.file_paths(text, {"/mnt/data/out.csv": "file-out"})
    assert notes == [
        {
            "type": "file_path",
            "text": "sandbox:/mnt/data/out.csv",
            "start_index": 4,
            "end_index": 29,
            "file_path": {"file_id": "file-out"},
        }
    ]


def test_citation_markers_become_file_citations() -> None:
    sources = citations.lookup(
        [{"file_search": {"results": [{"file_id": "file-a", "content": [{"text": "quoted"}]}]}}]
    )
    text = "Fact【0:0†a.txt】, not【0:1†b.txt】"
    assert citations.annotate(text, sources) == [
        {
            "type": "file_citation",
            "text": "【0:0†a.txt】",
            "start_index": 4,
            "end_index": 15,
            "file_citation": {"file_id": "file-a", "quote": "quoted"},
        }
    ]

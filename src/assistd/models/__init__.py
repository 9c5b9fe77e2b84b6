"""All ORM models; importing this package registers every table on ``Base.metadata``."""

from assistd.models.assistant import Assistant
from assistd.models.base import Base
from assistd.models.container import Container, ContainerFile
from assistd.models.conversation import Conversation, ConversationItem
from assistd.models.file import File
from assistd.models.project import ApiKey, Project
from assistd.models.response import StoredResponse
from assistd.models.run import Run, RunEvent, RunStep, RunWatcher
from assistd.models.thread import Message, Thread
from assistd.models.upload import Upload, UploadPart
from assistd.models.vector_store import (
    Chunk,
    ChunkEmbedding,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
)

__all__ = [
    "ApiKey",
    "Assistant",
    "Base",
    "Chunk",
    "ChunkEmbedding",
    "Container",
    "ContainerFile",
    "Conversation",
    "ConversationItem",
    "File",
    "Message",
    "Project",
    "Run",
    "RunEvent",
    "RunWatcher",
    "RunStep",
    "StoredResponse",
    "Thread",
    "Upload",
    "UploadPart",
    "VectorStore",
    "VectorStoreFile",
    "VectorStoreFileBatch",
]

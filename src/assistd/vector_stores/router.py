"""HTTP: ``/vector_stores`` with files, file batches and search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from assistd.core.schemas import Deleted, ListPage, WireModel, page_of
from assistd.projects.auth import ProjectDep
from assistd.vector_stores import rewrite, service
from assistd.vector_stores import search as search_module
from assistd.vector_stores.schemas import (
    FileBatchCreate,
    FileBatchObject,
    SearchRequest,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileModify,
    VectorStoreFileObject,
    VectorStoreModify,
    VectorStoreObject,
)
from assistd.web.deps import ListParamsDep, ReadSessionDep, SessionDep
from assistd.web.routing import ApiRoute

router = APIRouter(tags=["vector_stores"], route_class=ApiRoute)

FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


class _ContentPart(WireModel):
    type: Literal["text"] = "text"
    text: str


class FileContentPage(WireModel):
    """``object: "vector_store.file_content.page"``."""

    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[_ContentPart]
    has_more: bool = False
    next_page: str | None = None


class SearchResult(WireModel):
    """One search hit."""

    file_id: str
    filename: str
    score: float
    attributes: dict[str, object]
    content: list[_ContentPart]


class SearchPage(WireModel):
    """``object: "vector_store.search_results.page"``."""

    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


@router.post("/vector_stores")
async def create_vector_store(
    body: VectorStoreCreate, request: Request, session: SessionDep, project: ProjectDep
) -> VectorStoreObject:
    """Create a vector store (its files are ingested in the background)."""
    embeddings = request.app.state.settings.embeddings
    store = await service.create(
        session,
        project,
        body,
        embedding_model=embeddings.model,
        dimension=embeddings.dimension,
    )
    return await service.to_wire(session, store)


@router.get("/vector_stores")
async def list_vector_stores(
    session: ReadSessionDep, project: ProjectDep, params: ListParamsDep
) -> ListPage[VectorStoreObject]:
    """List vector stores."""
    rows, has_more = await service.list_stores(session, project, params)
    return ListPage[VectorStoreObject](
        **page_of(await service.to_wire_many(session, rows), has_more)
    )


@router.get("/vector_stores/{vector_store_id}")
async def retrieve_vector_store(
    vector_store_id: str, session: ReadSessionDep, project: ProjectDep
) -> VectorStoreObject:
    """Retrieve a vector store."""
    return await service.to_wire(session, await service.get(session, project, vector_store_id))


@router.post("/vector_stores/{vector_store_id}")
async def modify_vector_store(
    vector_store_id: str, body: VectorStoreModify, session: SessionDep, project: ProjectDep
) -> VectorStoreObject:
    """Modify a vector store."""
    store = await service.modify(session, project, vector_store_id, body)
    return await service.to_wire(session, store)


@router.delete("/vector_stores/{vector_store_id}")
async def delete_vector_store(
    vector_store_id: str, session: SessionDep, project: ProjectDep
) -> Deleted:
    """Delete a vector store."""
    await service.delete_store(session, project, vector_store_id)
    return Deleted(id=vector_store_id, object="vector_store.deleted")


@router.post("/vector_stores/{vector_store_id}/search")
async def search_vector_store(
    vector_store_id: str,
    body: SearchRequest,
    request: Request,
    session: SessionDep,
    project: ProjectDep,
) -> SearchPage:
    """Hybrid search over a store's chunks."""
    store = await service.get(session, project, vector_store_id)
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    if body.rewrite_query:
        state = request.app.state
        model = state.settings.search.rewrite_model
        queries = [await rewrite.rewrite(state.chat_router, model, q) for q in queries]
    ranking = body.ranking_options
    hits = await search_module.search(
        session,
        request.app.state.embedders(store.embedding_model),
        [store.id],
        store.dimension,
        queries,
        max_results=body.max_num_results,
        score_threshold=ranking.score_threshold if ranking else 0.0,
        filters=body.filters,
        hybrid=not (ranking and ranking.ranker == "none"),
    )
    await service.touch(session, store)
    return SearchPage(
        search_query=queries,
        data=[
            SearchResult(
                file_id=h.file_id,
                filename=h.filename,
                score=h.score,
                attributes=h.attributes,
                content=[_ContentPart(text=h.content)],
            )
            for h in hits
        ],
    )


@router.post("/vector_stores/{vector_store_id}/files")
async def create_vector_store_file(
    vector_store_id: str, body: VectorStoreFileCreate, session: SessionDep, project: ProjectDep
) -> VectorStoreFileObject:
    """Attach a file to a vector store."""
    return service.file_to_wire(await service.add_file(session, project, vector_store_id, body))


@router.get("/vector_stores/{vector_store_id}/files")
async def list_vector_store_files(
    vector_store_id: str,
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
    filter: Annotated[FileStatus | None, Query()] = None,
) -> ListPage[VectorStoreFileObject]:
    """List a vector store's files."""
    rows, has_more = await service.list_files(session, project, vector_store_id, params, filter)
    return ListPage[VectorStoreFileObject](
        **page_of([service.file_to_wire(r) for r in rows], has_more)
    )


@router.get("/vector_stores/{vector_store_id}/files/{file_id}")
async def retrieve_vector_store_file(
    vector_store_id: str,
    file_id: str,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    project: ProjectDep,
) -> VectorStoreFileObject:
    """Retrieve a vector store file (with a poll hint for ``create_and_poll``)."""
    row = await service.get_file(session, project, vector_store_id, file_id)
    response.headers["openai-poll-after-ms"] = str(request.app.state.settings.poll_after_ms)
    return service.file_to_wire(row)


@router.post("/vector_stores/{vector_store_id}/files/{file_id}")
async def update_vector_store_file(
    vector_store_id: str,
    file_id: str,
    body: VectorStoreFileModify,
    session: SessionDep,
    project: ProjectDep,
) -> VectorStoreFileObject:
    """Replace a vector store file's attributes."""
    row = await service.update_file(session, project, vector_store_id, file_id, body.attributes)
    return service.file_to_wire(row)


@router.delete("/vector_stores/{vector_store_id}/files/{file_id}")
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, session: SessionDep, project: ProjectDep
) -> Deleted:
    """Detach a file from a vector store (the File itself stays)."""
    await service.delete_file(session, project, vector_store_id, file_id)
    return Deleted(id=file_id, object="vector_store.file.deleted")


@router.get("/vector_stores/{vector_store_id}/files/{file_id}/content")
async def vector_store_file_content(
    vector_store_id: str, file_id: str, session: ReadSessionDep, project: ProjectDep
) -> FileContentPage:
    """The parsed text of a vector store file."""
    texts = await service.file_content(session, project, vector_store_id, file_id)
    return FileContentPage(data=[_ContentPart(text=t) for t in texts])


@router.post("/vector_stores/{vector_store_id}/file_batches")
async def create_file_batch(
    vector_store_id: str, body: FileBatchCreate, session: SessionDep, project: ProjectDep
) -> FileBatchObject:
    """Attach many files at once."""
    batch = await service.create_batch(session, project, vector_store_id, body)
    return await service.batch_to_wire(session, batch)


@router.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}")
async def retrieve_file_batch(
    vector_store_id: str,
    batch_id: str,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    project: ProjectDep,
) -> FileBatchObject:
    """Retrieve a file batch (with a poll hint for ``*_and_poll``)."""
    batch = await service.get_batch(session, project, vector_store_id, batch_id)
    response.headers["openai-poll-after-ms"] = str(request.app.state.settings.poll_after_ms)
    return await service.batch_to_wire(session, batch)


@router.post("/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(
    vector_store_id: str, batch_id: str, session: SessionDep, project: ProjectDep
) -> FileBatchObject:
    """Cancel a file batch."""
    batch = await service.cancel_batch(session, project, vector_store_id, batch_id)
    return await service.batch_to_wire(session, batch)


@router.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    session: ReadSessionDep,
    project: ProjectDep,
    params: ListParamsDep,
    filter: Annotated[FileStatus | None, Query()] = None,
) -> ListPage[VectorStoreFileObject]:
    """List a batch's files."""
    await service.get_batch(session, project, vector_store_id, batch_id)
    rows, has_more = await service.list_files(
        session, project, vector_store_id, params, filter, batch_id=batch_id
    )
    return ListPage[VectorStoreFileObject](
        **page_of([service.file_to_wire(r) for r in rows], has_more)
    )

// Object CRUD and cursor pagination with openai-node: assistants, threads, messages, files.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI, { toFile } from 'openai';

import { WEATHER_TOOL, client, rejectsWith, tag, textOf } from './support.mjs';

const openai = client();

test('assistants: create, retrieve, update, list pages, delete', { timeout: 60_000 }, async () => {
  const marker = tag();
  const created = [];
  for (let i = 0; i < 5; i++) {
    created.push(
      await openai.beta.assistants.create({
        model: 'gpt-4o',
        name: `node-${marker}-${i}`,
        instructions: 'Be brief.',
        tools: [WEATHER_TOOL],
        metadata: { marker, index: String(i) },
        temperature: 0.5,
      }),
    );
  }
  const first = created[0];
  assert.match(first.id, /^asst_/);
  assert.equal(first.object, 'assistant');
  assert.equal(first.name, `node-${marker}-0`);
  assert.equal(first.model, 'gpt-4o');
  assert.equal(first.instructions, 'Be brief.');
  assert.deepEqual(first.metadata, { marker, index: '0' });
  assert.equal(first.temperature, 0.5);
  assert.equal(first.tools.length, 1);
  assert.equal(first.tools[0].type, 'function');
  assert.equal(first.tools[0].function.name, 'get_weather');
  assert.deepEqual(first.tools[0].function.parameters, WEATHER_TOOL.function.parameters);
  assert.equal(typeof first.created_at, 'number');

  const got = await openai.beta.assistants.retrieve(first.id);
  assert.deepEqual(got, first);

  const updated = await openai.beta.assistants.update(first.id, {
    name: `renamed-${marker}`,
    metadata: { marker, index: '0', touched: 'yes' },
  });
  assert.equal(updated.id, first.id);
  assert.equal(updated.name, `renamed-${marker}`);
  assert.equal(updated.instructions, 'Be brief.'); // untouched fields stay
  assert.deepEqual(updated.metadata, { marker, index: '0', touched: 'yes' });
  assert.equal((await openai.beta.assistants.retrieve(first.id)).name, `renamed-${marker}`);

  // Newest first, two per page, walked page by page with the SDK's cursor (after=<last id>).
  // Other test files may create assistants meanwhile: they go to the front of a descending
  // list and never disturb the pages behind it.
  const pages = [];
  let page = await openai.beta.assistants.list({ limit: 2 });
  pages.push(page);
  while (page.hasNextPage()) {
    page = await page.getNextPage();
    pages.push(page);
  }
  const walked = pages.flatMap((p) => p.data.map((a) => a.id));
  assert.equal(new Set(walked).size, walked.length, 'no assistant listed twice');
  for (const p of pages.slice(0, -1)) {
    assert.equal(p.data.length, 2);
    assert.equal(p.has_more, true);
  }
  assert.equal(pages.at(-1).has_more, false);
  assert.ok(pages.length >= 3, `5 assistants in pages of 2 make at least 3 pages (${pages.length})`);
  const mine = new Set(created.map((a) => a.id));
  assert.deepEqual(
    walked.filter((id) => mine.has(id)),
    created.map((a) => a.id).reverse(),
  );

  // Explicit cursors. Only this test's assistants are compared: another test file may
  // create assistants between two of these creates.
  const ids = created.map((a) => a.id);
  const asc = await openai.beta.assistants.list({ limit: 100, order: 'asc', after: ids[1] });
  assert.deepEqual(
    asc.data.map((a) => a.id).filter((id) => mine.has(id)),
    ids.slice(2),
  );
  assert.equal(asc.has_more, false);
  // Descending with before=<id>: the newer ones, nearest the cursor last.
  const newer = await openai.beta.assistants.list({ limit: 100, before: ids[2] });
  assert.deepEqual(
    newer.data.map((a) => a.id).filter((id) => mine.has(id)),
    [ids[4], ids[3]],
  );
  // A window between two cursors.
  const window = await openai.beta.assistants.list({ order: 'asc', after: ids[0], before: ids[4] });
  assert.deepEqual(
    window.data.map((a) => a.id).filter((id) => mine.has(id)),
    ids.slice(1, 4),
  );

  // The auto-pager (for await) walks every page too.
  const seen = [];
  for await (const assistant of openai.beta.assistants.list({ limit: 2 })) {
    if (mine.has(assistant.id)) seen.push(assistant.id);
  }
  assert.deepEqual(seen, created.map((a) => a.id).reverse());

  for (const assistant of created) {
    const deleted = await openai.beta.assistants.delete(assistant.id);
    assert.deepEqual(deleted, { id: assistant.id, object: 'assistant.deleted', deleted: true });
  }
  const gone = await rejectsWith(
    openai.beta.assistants.retrieve(first.id),
    OpenAI.NotFoundError,
    404,
  );
  assert.equal(gone.error.message, `No assistant found with id '${first.id}'.`);
  await rejectsWith(openai.beta.assistants.delete(first.id), OpenAI.NotFoundError, 404);
});

test('threads and messages: create, paginate, update, delete', { timeout: 60_000 }, async () => {
  const marker = tag();
  const thread = await openai.beta.threads.create({
    messages: [
      { role: 'user', content: `first ${marker}` },
      { role: 'user', content: [{ type: 'text', text: `second ${marker}` }] },
    ],
    metadata: { marker },
  });
  assert.match(thread.id, /^thread_/);
  assert.equal(thread.object, 'thread');
  assert.deepEqual(thread.metadata, { marker });
  assert.deepEqual(await openai.beta.threads.retrieve(thread.id), thread);

  const more = [];
  for (let i = 3; i <= 7; i++) {
    more.push(
      await openai.beta.threads.messages.create(thread.id, {
        role: 'user',
        content: `message ${i} ${marker}`,
        metadata: { n: String(i) },
      }),
    );
  }
  assert.equal(more[0].object, 'thread.message');
  assert.equal(more[0].thread_id, thread.id);
  assert.equal(more[0].role, 'user');
  assert.equal(textOf(more[0]), `message 3 ${marker}`);
  assert.deepEqual(more[0].metadata, { n: '3' });

  const expected = [
    `first ${marker}`,
    `second ${marker}`,
    ...[3, 4, 5, 6, 7].map((i) => `message ${i} ${marker}`),
  ];
  // Oldest first, three per page: 3 + 3 + 1.
  const pages = [];
  let page = await openai.beta.threads.messages.list(thread.id, { order: 'asc', limit: 3 });
  pages.push(page);
  while (page.hasNextPage()) {
    page = await page.getNextPage();
    pages.push(page);
  }
  assert.deepEqual(
    pages.map((p) => p.data.length),
    [3, 3, 1],
  );
  assert.deepEqual(
    pages.map((p) => p.has_more),
    [true, true, false],
  );
  const asc = pages.flatMap((p) => p.data);
  assert.deepEqual(asc.map(textOf), expected);
  // The default order is newest first; the auto-pager gives the same messages reversed.
  const desc = [];
  for await (const message of openai.beta.threads.messages.list(thread.id, { limit: 2 })) {
    desc.push(message.id);
  }
  assert.deepEqual(desc, asc.map((m) => m.id).reverse());
  // before=<id> in ascending order: the messages older than it.
  const older = await openai.beta.threads.messages.list(thread.id, {
    order: 'asc',
    before: asc[2].id,
  });
  assert.deepEqual(older.data.map(textOf), expected.slice(0, 2));

  const target = more[1];
  const retrieved = await openai.beta.threads.messages.retrieve(target.id, {
    thread_id: thread.id,
  });
  assert.equal(textOf(retrieved), `message 4 ${marker}`);
  const changed = await openai.beta.threads.messages.update(target.id, {
    thread_id: thread.id,
    metadata: { n: '4', edited: 'true' },
  });
  assert.deepEqual(changed.metadata, { n: '4', edited: 'true' });
  assert.equal(textOf(changed), `message 4 ${marker}`);

  const removed = await openai.beta.threads.messages.delete(target.id, { thread_id: thread.id });
  assert.deepEqual(removed, { id: target.id, object: 'thread.message.deleted', deleted: true });
  const left = await openai.beta.threads.messages.list(thread.id, { order: 'asc', limit: 100 });
  assert.deepEqual(
    left.data.map(textOf),
    expected.filter((t) => t !== `message 4 ${marker}`),
  );

  const renamed = await openai.beta.threads.update(thread.id, { metadata: { marker, v: '2' } });
  assert.deepEqual(renamed.metadata, { marker, v: '2' });

  const deleted = await openai.beta.threads.delete(thread.id);
  assert.deepEqual(deleted, { id: thread.id, object: 'thread.deleted', deleted: true });
  await rejectsWith(openai.beta.threads.retrieve(thread.id), OpenAI.NotFoundError, 404);
  await rejectsWith(openai.beta.threads.messages.list(thread.id), OpenAI.NotFoundError, 404);
});

test('files: upload with toFile, retrieve, content, list, delete', { timeout: 60_000 }, async () => {
  const marker = tag();
  const bytes = Buffer.from(`name,score\nada,90\n\u00e9mile,88\n${marker}\n`, 'utf8');
  const uploaded = await openai.files.create({
    file: await toFile(bytes, `scores-${marker}.csv`, { type: 'text/csv' }),
    purpose: 'assistants',
  });
  assert.match(uploaded.id, /^file-/);
  assert.equal(uploaded.object, 'file');
  assert.equal(uploaded.bytes, bytes.length);
  assert.equal(uploaded.filename, `scores-${marker}.csv`);
  assert.equal(uploaded.purpose, 'assistants');

  const got = await openai.files.retrieve(uploaded.id);
  assert.equal(got.id, uploaded.id);
  assert.equal(got.bytes, bytes.length);
  assert.equal(got.filename, `scores-${marker}.csv`);

  const content = await openai.files.content(uploaded.id);
  assert.deepEqual(Buffer.from(await content.arrayBuffer()), bytes);

  // A second upload from a stream-like source (an async iterable of chunks) through toFile.
  async function* chunks() {
    yield Buffer.from('line one\n');
    yield Buffer.from(`line two ${marker}\n`);
  }
  const second = await openai.files.create({
    file: await toFile(chunks(), `notes-${marker}.txt`),
    purpose: 'assistants',
  });
  assert.equal(second.bytes, Buffer.byteLength(`line one\nline two ${marker}\n`));
  assert.equal(
    await (await openai.files.content(second.id)).text(),
    `line one\nline two ${marker}\n`,
  );

  const listed = [];
  for await (const file of openai.files.list({ purpose: 'assistants', limit: 1 })) {
    listed.push(file.id);
  }
  assert.ok(listed.includes(uploaded.id) && listed.includes(second.id), `listed: ${listed}`);
  // Newest first.
  assert.ok(listed.indexOf(second.id) < listed.indexOf(uploaded.id));

  for (const file of [uploaded, second]) {
    const deleted = await openai.files.delete(file.id);
    assert.deepEqual(deleted, { id: file.id, object: 'file', deleted: true });
    await rejectsWith(openai.files.retrieve(file.id), OpenAI.NotFoundError, 404);
    await rejectsWith(openai.files.content(file.id), OpenAI.NotFoundError, 404);
  }
});

// Keys and projects as openai-node sees them: 401 without a valid key, and another
// project's objects answer 404 exactly like unknown ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI, { toFile } from 'openai';

import { API_KEY, OTHER_KEY, client, rejectsWith, tag, textOf } from './support.mjs';

const openai = client();
const other = client(OTHER_KEY);

test('a missing key is a 401 AuthenticationError', { timeout: 30_000 }, async () => {
  // The SDK refuses to build a client without credentials; the Authorization header set to
  // null makes it send the request with no key at all.
  const anonymous = client('unused', { defaultHeaders: { Authorization: null } });
  const error = await rejectsWith(
    anonymous.beta.assistants.list(),
    OpenAI.AuthenticationError,
    401,
  );
  assert.equal(error.code, 'missing_api_key');
  assert.equal(error.error.type, 'invalid_request_error');
  assert.ok(error.message.startsWith('401 '), error.message);
  await rejectsWith(anonymous.files.list(), OpenAI.AuthenticationError, 401);
});

test('a wrong key is a 401 AuthenticationError', { timeout: 30_000 }, async () => {
  for (const key of [`${API_KEY}x`, 'sk-assistd-wrong-key-000000000000']) {
    const wrong = client(key);
    const error = await rejectsWith(wrong.beta.assistants.list(), OpenAI.AuthenticationError, 401);
    assert.equal(error.code, 'invalid_api_key');
    assert.ok(!error.message.includes(API_KEY), 'the key is not echoed back');
    await rejectsWith(
      wrong.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] }),
      OpenAI.AuthenticationError,
      401,
    );
  }
  // The right key works, so the 401s above are about the key.
  assert.ok(Array.isArray((await openai.beta.assistants.list({ limit: 1 })).data));
});

/** An id of the same shape as `real` that names nothing. */
function lookalike(real) {
  const cut = real.search(/[_-]/) + 1;
  return real.slice(0, cut) + 'z'.repeat(real.length - cut);
}

test("another project's ids answer 404 like unknown ids", { timeout: 60_000 }, async () => {
  const marker = tag();
  const assistant = await openai.beta.assistants.create({
    model: 'gpt-4o',
    name: `mine-${marker}`,
    metadata: { owner: 'a' },
  });
  const thread = await openai.beta.threads.create({
    messages: [{ role: 'user', content: `secret ${marker}` }],
    metadata: { owner: 'a' },
  });
  const [message] = (await openai.beta.threads.messages.list(thread.id)).data;
  const file = await openai.files.create({
    file: await toFile(Buffer.from(`secret ${marker}\n`), `secret-${marker}.txt`),
    purpose: 'assistants',
  });
  const store = await openai.vectorStores.create({ name: `mine-${marker}` });

  const attempts = {
    'assistant retrieve': [(id) => other.beta.assistants.retrieve(id), assistant.id, 'assistant'],
    'assistant update': [
      (id) => other.beta.assistants.update(id, { name: 'hijacked' }),
      assistant.id,
      'assistant',
    ],
    'assistant delete': [(id) => other.beta.assistants.delete(id), assistant.id, 'assistant'],
    'thread retrieve': [(id) => other.beta.threads.retrieve(id), thread.id, 'thread'],
    'thread update': [
      (id) => other.beta.threads.update(id, { metadata: { owner: 'b' } }),
      thread.id,
      'thread',
    ],
    'thread delete': [(id) => other.beta.threads.delete(id), thread.id, 'thread'],
    'messages list': [(id) => other.beta.threads.messages.list(id), thread.id, 'thread'],
    'message create': [
      (id) => other.beta.threads.messages.create(id, { role: 'user', content: 'injected' }),
      thread.id,
      'thread',
    ],
    'run create': [
      (id) => other.beta.threads.runs.create(id, { assistant_id: assistant.id }),
      thread.id,
      'thread',
    ],
    'file retrieve': [(id) => other.files.retrieve(id), file.id, 'file'],
    'file content': [(id) => other.files.content(id), file.id, 'file'],
    'file delete': [(id) => other.files.delete(id), file.id, 'file'],
    'vector store retrieve': [(id) => other.vectorStores.retrieve(id), store.id, null],
    'vector store delete': [(id) => other.vectorStores.delete(id), store.id, null],
  };
  for (const [name, [call, id, kind]] of Object.entries(attempts)) {
    const real = await rejectsWith(call(id), OpenAI.NotFoundError, 404);
    const fake = await rejectsWith(call(lookalike(id)), OpenAI.NotFoundError, 404);
    assert.deepEqual(
      JSON.parse(JSON.stringify(real.error).replaceAll(id, '<id>')),
      JSON.parse(JSON.stringify(fake.error).replaceAll(lookalike(id), '<id>')),
      `${name}: the same error as for an unknown id`,
    );
    assert.deepEqual(Object.keys(real.error).sort(), ['code', 'message', 'param', 'type'], name);
    if (kind) {
      assert.equal(real.error.message, `No ${kind} found with id '${id}'.`, name);
    }
  }
  // A run with project A's assistant on B's own thread: the assistant is unknown to B.
  const ownThread = await other.beta.threads.create();
  await rejectsWith(
    other.beta.threads.runs.create(ownThread.id, { assistant_id: assistant.id }),
    OpenAI.NotFoundError,
    404,
  );

  // B's lists never show A's objects.
  const bAssistants = [];
  for await (const a of other.beta.assistants.list()) bAssistants.push(a.id);
  assert.ok(!bAssistants.includes(assistant.id));
  const bFiles = [];
  for await (const f of other.files.list()) bFiles.push(f.id);
  assert.ok(!bFiles.includes(file.id));

  // Everything of A is still there, unchanged.
  const stillAssistant = await openai.beta.assistants.retrieve(assistant.id);
  assert.equal(stillAssistant.name, `mine-${marker}`);
  assert.deepEqual((await openai.beta.threads.retrieve(thread.id)).metadata, { owner: 'a' });
  const messages = (await openai.beta.threads.messages.list(thread.id)).data;
  assert.deepEqual(
    messages.map((m) => [m.id, textOf(m)]),
    [[message.id, `secret ${marker}`]],
  );
  assert.equal(await (await openai.files.content(file.id)).text(), `secret ${marker}\n`);
  assert.equal((await openai.vectorStores.retrieve(store.id)).name, `mine-${marker}`);
});

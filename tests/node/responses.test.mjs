// The Responses API with openai-node: answers streamed (responses.stream and create with
// stream: true) and not, memory through previous_response_id and conversations, a function
// call round trip, background responses polled and cancelled, store: false, and bad input.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';

import OpenAI from 'openai';

import { OTHER_KEY, client, rejectsWith, script, tag } from './support.mjs';

const openai = client();
const other = client(OTHER_KEY);

const MODEL = 'gpt-4o-mini';

/** The Responses API's flat function tool. */
const WEATHER = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather of a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: false,
};

/** The order a single text answer's events come in (others may sit between them). */
const TEXT_ANSWER_ORDER = [
  'response.created',
  'response.in_progress',
  'response.output_item.added',
  'response.content_part.added',
  'response.output_text.delta',
  'response.output_text.done',
  'response.content_part.done',
  'response.output_item.done',
  'response.completed',
];

/** A streamed text answer's events: numbered from 0, in order, the deltas making `text`
 * (a background response is created queued, one in the foreground in progress). */
function assertTextAnswerEvents(events, text, { background = false } = {}) {
  const kinds = events.map((e) => e.type);
  assert.equal(kinds[0], 'response.created', kinds.join(' '));
  assert.equal(kinds.at(-1), 'response.completed', kinds.join(' '));
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
  );
  const positions = TEXT_ANSWER_ORDER.map((kind) => kinds.indexOf(kind));
  assert.ok(!positions.includes(-1), `every kind is there: ${kinds.join(' ')}`);
  assert.deepEqual(
    positions,
    [...positions].sort((a, b) => a - b),
    kinds.join(' '),
  );
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.ok(deltas.length > 1, `the text came in pieces (${deltas.length})`);
  assert.equal(deltas.map((e) => e.delta).join(''), text);
  const [done] = events.filter((e) => e.type === 'response.output_text.done');
  assert.equal(done.text, text);
  const id = events[0].response.id;
  assert.match(id, /^resp_/);
  for (const event of events.filter((e) => e.response)) assert.equal(event.response.id, id);
  assert.equal(events[0].response.status, background ? 'queued' : 'in_progress');
  assert.equal(kinds.includes('response.queued'), background, kinds.join(' '));
  const last = events.at(-1).response;
  assert.equal(last.status, 'completed');
  assert.equal(last.output_text, undefined, "output_text is the SDK's, not the wire's");
  assert.deepEqual(
    last.output.map((item) => [item.type, item.role, item.content.map((c) => c.text)]),
    [['message', 'assistant', [text]]],
  );
  return last;
}

/** Retrieve `id` until it leaves queued/in_progress (or the deadline passes). */
async function settle(id, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  let response = await openai.responses.retrieve(id);
  while (['queued', 'in_progress'].includes(response.status) && Date.now() < deadline) {
    await sleep(50);
    response = await openai.responses.retrieve(id);
  }
  return response;
}

test('responses.create: a plain answer, retrieved and deleted', { timeout: 60_000 }, async () => {
  const marker = tag();
  const response = await openai.responses.create({
    model: MODEL,
    input: `Say hi ${marker}`,
    instructions: 'Be kind.',
    metadata: { marker },
  });
  assert.match(response.id, /^resp_/);
  assert.equal(response.object, 'response');
  assert.equal(response.status, 'completed');
  assert.equal(response.output_text, `You said: Say hi ${marker}`);
  assert.equal(response.model, MODEL);
  assert.equal(response.instructions, 'Be kind.');
  assert.deepEqual(response.metadata, { marker });
  assert.equal(response.error, null);
  assert.equal(response.previous_response_id, null);
  assert.equal(typeof response.created_at, 'number');
  assert.ok(response.usage.input_tokens > 0 && response.usage.output_tokens > 0);
  assert.equal(
    response.usage.total_tokens,
    response.usage.input_tokens + response.usage.output_tokens,
  );
  assert.equal(response.output.length, 1);
  const [message] = response.output;
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.status, 'completed');
  assert.deepEqual(
    message.content.map((c) => [c.type, c.text]),
    [['output_text', `You said: Say hi ${marker}`]],
  );

  const again = await openai.responses.retrieve(response.id);
  assert.equal(again.status, 'completed');
  assert.equal(again.output_text, response.output_text);
  assert.deepEqual(again.output, response.output);

  const inputs = await openai.responses.inputItems.list(response.id, { order: 'asc' });
  assert.deepEqual(
    inputs.data.map((item) => [item.type, item.role, item.content.map((c) => c.text)]),
    [['message', 'user', [`Say hi ${marker}`]]],
  );

  const deleted = await openai.responses.delete(response.id);
  assert.deepEqual(deleted, { id: response.id, object: 'response', deleted: true });
  await rejectsWith(openai.responses.retrieve(response.id), OpenAI.NotFoundError, 404);
});

test('responses.stream: events in order, deltas make the text', { timeout: 60_000 }, async () => {
  const marker = tag();
  const reply = `The quick brown fox ${marker} jumps over the lazy dog.`;
  const stream = openai.responses.stream({ model: MODEL, input: script({ reply, delay_ms: 10 }) });
  const snapshots = [];
  const deltas = [];
  stream.on('response.output_text.delta', (event) => {
    deltas.push(event.delta);
    snapshots.push(event.snapshot);
  });
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalResponse();

  const completed = assertTextAnswerEvents(events, reply);
  // The helper's snapshots are the text so far.
  assert.equal(deltas.join(''), reply);
  assert.deepEqual(
    snapshots,
    deltas.map((_, i) => deltas.slice(0, i + 1).join('')),
  );
  assert.equal(final.id, completed.id);
  assert.equal(final.status, 'completed');
  assert.equal(final.output_text, reply);
  assert.ok(final.usage.output_tokens > 0);

  const stored = await openai.responses.retrieve(final.id);
  assert.equal(stored.status, 'completed');
  assert.equal(stored.output_text, reply);
});

test('responses.create with stream: true, iterated', { timeout: 60_000 }, async () => {
  const marker = tag();
  const reply = `Pack my box ${marker} with five dozen liquor jugs.`;
  const stream = await openai.responses.create({
    model: MODEL,
    input: script({ reply, delay_ms: 10 }),
    stream: true,
  });
  const events = [];
  for await (const event of stream) events.push(event);

  const completed = assertTextAnswerEvents(events, reply);
  assert.deepEqual(
    events.filter((e) => e.type === 'response.output_item.added').map((e) => e.output_index),
    [0],
  );
  assert.ok(completed.usage.output_tokens > 0);
  assert.equal(events.find((e) => e.type === 'response.in_progress').response.usage, null);
  const stored = await openai.responses.retrieve(completed.id);
  assert.equal(stored.output_text, reply);
  assert.deepEqual(stored.output, completed.output);
});

test('previous_response_id carries the history', { timeout: 60_000 }, async () => {
  const marker = tag();
  // The scripted model follows the newest `#script` among the user messages it is sent: the
  // second turn answers the first turn's script only when the history came along.
  const first = await openai.responses.create({
    model: MODEL,
    input: `My name is Ada ${marker}. ${script({ reply: `Noted, Ada ${marker}.` })}`,
    instructions: 'FIRST',
  });
  assert.equal(first.output_text, `Noted, Ada ${marker}.`);

  const second = await openai.responses.create({
    model: MODEL,
    input: `What is my name? ${marker}`,
    previous_response_id: first.id,
  });
  assert.equal(second.status, 'completed');
  assert.equal(second.previous_response_id, first.id);
  assert.equal(second.instructions, null, 'instructions are not carried over');
  assert.equal(second.output_text, `Noted, Ada ${marker}.`);
  // Without previous_response_id the same input stands alone.
  const alone = await openai.responses.create({ model: MODEL, input: `What is my name? ${marker}` });
  assert.equal(alone.output_text, `You said: What is my name? ${marker}`);
  assert.ok(
    second.usage.input_tokens > alone.usage.input_tokens,
    `${second.usage.input_tokens} > ${alone.usage.input_tokens}`,
  );

  // A third turn chained on the second, streamed, still sees the first.
  const third = openai.responses.stream({
    model: MODEL,
    input: `And again? ${marker}`,
    previous_response_id: second.id,
  });
  const final = await third.finalResponse();
  assert.equal(final.previous_response_id, second.id);
  assert.equal(final.output_text, `Noted, Ada ${marker}.`);
});

test('a conversation keeps the items of its responses', { timeout: 60_000 }, async () => {
  const marker = tag();
  const conversation = await openai.conversations.create({ metadata: { marker } });
  assert.match(conversation.id, /^conv_/);
  assert.equal(conversation.object, 'conversation');
  assert.deepEqual(conversation.metadata, { marker });

  const remember = `Remember 42 ${marker}. ${script({ reply: `I will remember 42 (${marker}).` })}`;
  const first = await openai.responses.create({
    model: MODEL,
    input: remember,
    conversation: conversation.id,
  });
  assert.equal(first.conversation.id, conversation.id);
  assert.equal(first.output_text, `I will remember 42 (${marker}).`);
  const second = await openai.responses.create({
    model: MODEL,
    input: `What number? ${marker}`,
    conversation: { id: conversation.id },
  });
  assert.equal(second.conversation.id, conversation.id);
  assert.equal(second.previous_response_id, null);
  // The first turn's script reached the model: the conversation was its history.
  assert.equal(second.output_text, `I will remember 42 (${marker}).`);

  const items = [];
  for await (const item of openai.conversations.items.list(conversation.id, { order: 'asc' })) {
    items.push(item);
  }
  assert.deepEqual(
    items.map((item) => [item.type, item.role, item.content.map((c) => [c.type, c.text])]),
    [
      ['message', 'user', [['input_text', remember]]],
      ['message', 'assistant', [['output_text', `I will remember 42 (${marker}).`]]],
      ['message', 'user', [['input_text', `What number? ${marker}`]]],
      ['message', 'assistant', [['output_text', `I will remember 42 (${marker}).`]]],
    ],
  );
  assert.equal(items[1].id, first.output[0].id);
  assert.equal(items[3].id, second.output[0].id);

  // Another project cannot use the conversation.
  await rejectsWith(
    other.responses.create({ model: MODEL, input: 'x', conversation: conversation.id }),
    OpenAI.NotFoundError,
    404,
  );
});

test('function call round trip through previous_response_id', { timeout: 60_000 }, async () => {
  const marker = tag();
  const first = await openai.responses.create({
    model: MODEL,
    tools: [WEATHER],
    input:
      `Weather in Paris? ${marker} ` +
      script({
        tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
        after_tools: `It is {output0} in Paris (${marker}).`,
      }),
  });
  assert.equal(first.status, 'completed');
  assert.equal(first.output_text, '');
  const calls = first.output.filter((item) => item.type === 'function_call');
  assert.equal(calls.length, 1);
  const [call] = calls;
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
  assert.equal(typeof call.call_id, 'string');
  assert.ok(call.call_id.length > 0);
  assert.equal(call.status, 'completed');
  assert.deepEqual(first.tools.map((t) => [t.type, t.name]), [['function', 'get_weather']]);

  // The application runs the function and answers the call, streamed this time.
  const stream = openai.responses.stream({
    model: MODEL,
    tools: [WEATHER],
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: '22C' }],
  });
  const events = [];
  for await (const event of stream) events.push(event);
  const second = await stream.finalResponse();
  assertTextAnswerEvents(events, `It is 22C in Paris (${marker}).`);
  assert.equal(second.output_text, `It is 22C in Paris (${marker}).`);
  assert.equal(second.previous_response_id, first.id);

  const inputs = await openai.responses.inputItems.list(second.id);
  assert.deepEqual(
    inputs.data.map((item) => [item.type, item.call_id, item.output]),
    [['function_call_output', call.call_id, '22C']],
  );
});

test('a streamed function call, answered without streaming', { timeout: 60_000 }, async () => {
  const marker = tag();
  const stream = openai.responses.stream({
    model: MODEL,
    tools: [WEATHER],
    input:
      `Weather in Rome? ${marker} ` +
      script({
        tool_calls: [{ name: 'get_weather', arguments: { city: 'Rome' } }],
        after_tools: `Rome: {output0} (${marker}).`,
        delay_ms: 5,
      }),
  });
  const snapshots = [];
  stream.on('response.function_call_arguments.delta', (event) => snapshots.push(event.snapshot));
  const events = [];
  for await (const event of stream) events.push(event);
  const first = await stream.finalResponse();

  const kinds = events.map((e) => e.type);
  assert.equal(kinds[0], 'response.created');
  assert.equal(kinds.at(-1), 'response.completed');
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
  );
  assert.ok(!kinds.includes('response.output_text.delta'), kinds.join(' '));
  const [done] = events.filter((e) => e.type === 'response.function_call_arguments.done');
  assert.deepEqual(JSON.parse(done.arguments), { city: 'Rome' });
  assert.ok(snapshots.length >= 1, kinds.join(' '));
  assert.equal(snapshots.at(-1), done.arguments);
  const [call] = first.output.filter((item) => item.type === 'function_call');
  assert.equal(call.name, 'get_weather');
  assert.equal(call.arguments, done.arguments);
  const [added] = events.filter((e) => e.type === 'response.output_item.added');
  assert.equal(added.item.type, 'function_call');
  assert.equal(added.item.call_id, call.call_id);

  const second = await openai.responses.create({
    model: MODEL,
    tools: [WEATHER],
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: '18C' }],
  });
  assert.equal(second.status, 'completed');
  assert.equal(second.output_text, `Rome: 18C (${marker}).`);
});

test('background responses: polled until completed, and cancelled', { timeout: 60_000 }, async () => {
  const marker = tag();
  const queued = await openai.responses.create({
    model: MODEL,
    input: `quick ${marker}`,
    background: true,
  });
  assert.equal(queued.background, true);
  assert.ok(['queued', 'in_progress'].includes(queued.status), queued.status);
  assert.equal(queued.usage, null);
  const done = await settle(queued.id);
  assert.equal(done.status, 'completed', JSON.stringify(done.error));
  assert.equal(done.output_text, `You said: quick ${marker}`);
  assert.equal(done.background, true);
  assert.ok(done.usage.total_tokens > 0);

  const slow = await openai.responses.create({
    model: MODEL,
    input: script({ reply: `a b c d e f g h ${marker}`, delay_ms: 1000 }),
    background: true,
  });
  await sleep(300);
  const cancelling = await openai.responses.cancel(slow.id);
  assert.equal(cancelling.id, slow.id);
  const cancelled = await settle(slow.id);
  assert.equal(cancelled.status, 'cancelled');
  assert.notEqual(cancelled.output_text, `a b c d e f g h ${marker}`);
  // Cancelling a finished response changes nothing; one made in the foreground cannot be.
  const still = await openai.responses.cancel(done.id);
  assert.equal(still.status, 'completed');
  assert.deepEqual(still.output, done.output);
  const foreground = await openai.responses.create({ model: MODEL, input: `now ${marker}` });
  const refused = await rejectsWith(
    openai.responses.cancel(foreground.id),
    OpenAI.BadRequestError,
    400,
  );
  assert.match(refused.message, /background/);
});

test('a background stream, left and resumed with starting_after', { timeout: 60_000 }, async () => {
  const marker = tag();
  const reply = `one two three four five six ${marker}`;
  const first = await openai.responses.create({
    model: MODEL,
    input: script({ reply, delay_ms: 50 }),
    background: true,
    stream: true,
  });
  const before = [];
  for await (const event of first) {
    before.push(event);
    if (event.type === 'response.output_text.delta') break; // leaves the stream
  }
  const id = before[0].response.id;
  const last = before.at(-1).sequence_number;
  assert.equal(before[0].response.background, true);

  const resumed = openai.responses.stream({ response_id: id, starting_after: last });
  const after = [];
  for await (const event of resumed) after.push(event);
  const final = await resumed.finalResponse();

  assert.deepEqual(
    after.map((e) => e.sequence_number),
    after.map((_, i) => last + 1 + i),
  );
  assertTextAnswerEvents([...before, ...after], reply, { background: true });
  assert.equal(final.id, id);
  assert.equal(final.output_text, reply);
  assert.equal((await openai.responses.retrieve(id)).output_text, reply);
});

test('store: false answers but keeps nothing', { timeout: 60_000 }, async () => {
  const marker = tag();
  const response = await openai.responses.create({
    model: MODEL,
    input: `secret ${marker}`,
    store: false,
  });
  assert.equal(response.status, 'completed');
  assert.equal(response.store, false);
  assert.equal(response.output_text, `You said: secret ${marker}`);
  await rejectsWith(openai.responses.retrieve(response.id), OpenAI.NotFoundError, 404);
  await rejectsWith(
    openai.responses.create({ model: MODEL, input: 'x', previous_response_id: response.id }),
    OpenAI.NotFoundError,
    404,
  );
});

test('bad input gets the error envelope', { timeout: 60_000 }, async () => {
  const first = await openai.responses.create({ model: MODEL, input: 'hi' });
  const conversation = await openai.conversations.create();

  const both = await rejectsWith(
    openai.responses.create({
      model: MODEL,
      input: 'x',
      previous_response_id: first.id,
      conversation: conversation.id,
    }),
    OpenAI.BadRequestError,
    400,
  );
  assert.equal(both.code, 'mutually_exclusive_parameters');
  assert.equal(both.type, 'invalid_request_error');

  const tool = await rejectsWith(
    openai.responses.create({ model: MODEL, input: 'x', tools: [{ type: 'web_search' }] }),
    OpenAI.BadRequestError,
    400,
  );
  assert.match(tool.message, /web_search/);
  assert.equal(tool.param, 'tools[0].type');

  const unknown = 'resp_' + 'z'.repeat(first.id.length - 5);
  const missing = await rejectsWith(
    openai.responses.retrieve(unknown),
    OpenAI.NotFoundError,
    404,
  );
  assert.match(missing.message, new RegExp(unknown));
  assert.deepEqual(Object.keys(missing.error).sort(), ['code', 'message', 'param', 'type']);
  await rejectsWith(
    openai.responses.create({ model: MODEL, input: 'x', previous_response_id: unknown }),
    OpenAI.NotFoundError,
    404,
  );
  await rejectsWith(openai.responses.delete(unknown), OpenAI.NotFoundError, 404);
  await rejectsWith(openai.responses.cancel(unknown), OpenAI.NotFoundError, 404);
  // Another project's response is unknown to it.
  await rejectsWith(other.responses.retrieve(first.id), OpenAI.NotFoundError, 404);
  await rejectsWith(
    other.responses.create({ model: MODEL, input: 'x', previous_response_id: first.id }),
    OpenAI.NotFoundError,
    404,
  );
  assert.equal((await openai.responses.retrieve(first.id)).status, 'completed');
});

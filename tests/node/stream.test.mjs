// Streamed runs with openai-node's AssistantStream: runs.stream and submitToolOutputsStream,
// with textDelta / toolCallCreated / runStepDone handlers, the text rebuilt from the deltas.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WEATHER_TOOL, client, script, tag, textOf } from './support.mjs';

const openai = client();

/** Attach the handlers under test to an AssistantStream and record what they see. */
function record(stream) {
  const seen = { deltas: [], snapshots: [], toolCalls: [], stepsDone: [], events: [], textsDone: [] };
  stream
    .on('textDelta', (delta, snapshot) => {
      seen.deltas.push(delta.value);
      seen.snapshots.push(snapshot.value);
    })
    .on('textDone', (text) => seen.textsDone.push(text.value))
    .on('toolCallCreated', (toolCall) => seen.toolCalls.push(structuredClone(toolCall)))
    .on('runStepDone', (step) => seen.stepsDone.push(structuredClone(step)))
    .on('event', (event) => seen.events.push(event.event));
  return seen;
}

/** Every textDelta snapshot is the text so far: the deltas accumulated. */
function assertSnapshots(seen) {
  assert.deepEqual(
    seen.snapshots,
    seen.deltas.map((_, i) => seen.deltas.slice(0, i + 1).join('')),
  );
}

test('runs.stream: the text rebuilt from textDelta is the answer', { timeout: 60_000 }, async () => {
  const marker = tag();
  const reply = `The quick brown fox ${marker} jumps over the lazy dog.`;
  const assistant = await openai.beta.assistants.create({ model: 'gpt-4o' });
  const thread = await openai.beta.threads.create({
    messages: [{ role: 'user', content: `story ${script({ reply, delay_ms: 20 })}` }],
  });

  const stream = openai.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
  const seen = record(stream);
  const run = await stream.finalRun();

  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(seen.deltas.join(''), reply);
  assertSnapshots(seen);
  assert.ok(seen.deltas.length > 1, `the text came in pieces (${seen.deltas.length})`);
  assert.deepEqual(seen.textsDone, [reply]);
  assert.deepEqual(seen.toolCalls, []);
  assert.deepEqual(
    seen.stepsDone.map((s) => [s.type, s.status]),
    [['message_creation', 'completed']],
  );
  assert.deepEqual(seen.events.slice(0, 3), [
    'thread.run.created',
    'thread.run.queued',
    'thread.run.in_progress',
  ]);
  assert.equal(seen.events.at(-1), 'thread.run.completed');
  assert.equal(
    seen.events.filter((e) => e === 'thread.message.delta').length,
    seen.deltas.length,
  );

  const [streamed] = await stream.finalMessages();
  assert.equal(textOf(streamed), reply);
  const [stored] = (await openai.beta.threads.messages.list(thread.id, { limit: 1 })).data;
  assert.equal(stored.id, streamed.id);
  assert.equal(textOf(stored), reply);
  assert.equal(seen.stepsDone[0].step_details.message_creation.message_id, stored.id);
  assert.equal(seen.stepsDone[0].run_id, run.id);
});

test('runs.stream with a tool call, then submitToolOutputsStream', { timeout: 60_000 }, async () => {
  const marker = tag();
  const assistant = await openai.beta.assistants.create({
    model: 'gpt-4o',
    tools: [WEATHER_TOOL],
  });
  const thread = await openai.beta.threads.create({
    messages: [
      {
        role: 'user',
        content:
          `weather? ${marker} ` +
          script({
            tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
            after_tools: `It is {output0} in Paris (${marker}).`,
            delay_ms: 10,
          }),
      },
    ],
  });

  const first = openai.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
  const before = record(first);
  const waiting = await first.finalRun();

  assert.equal(waiting.status, 'requires_action');
  assert.deepEqual(before.deltas, []);
  assert.equal(before.toolCalls.length, 1);
  const [created] = before.toolCalls;
  assert.equal(created.type, 'function');
  assert.equal(created.function.name, 'get_weather');
  const [call] = waiting.required_action.submit_tool_outputs.tool_calls;
  assert.equal(created.id, call.id);
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  // The tool step is still open while the run waits for outputs.
  assert.deepEqual(before.stepsDone, []);
  assert.equal(before.events.at(-1), 'thread.run.requires_action');
  assert.ok(before.events.includes('thread.run.step.delta'), before.events.join(' '));

  const second = openai.beta.threads.runs.submitToolOutputsStream(waiting.id, {
    thread_id: thread.id,
    tool_outputs: [{ tool_call_id: call.id, output: '22C' }],
  });
  const after = record(second);
  const done = await second.finalRun();

  assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
  assert.equal(done.id, waiting.id);
  const expected = `It is 22C in Paris (${marker}).`;
  assert.equal(after.deltas.join(''), expected);
  assertSnapshots(after);
  assert.ok(after.deltas.length > 1, `the text came in pieces (${after.deltas.length})`);
  assert.deepEqual(after.toolCalls, []);
  assert.deepEqual(
    after.stepsDone.map((s) => [s.type, s.status]),
    [
      ['tool_calls', 'completed'],
      ['message_creation', 'completed'],
    ],
  );
  const [toolStep, messageStep] = after.stepsDone;
  assert.deepEqual(
    toolStep.step_details.tool_calls.map((c) => [c.id, c.function.name, c.function.output]),
    [[call.id, 'get_weather', '22C']],
  );
  assert.equal(after.events.at(-1), 'thread.run.completed');

  const [stored] = (await openai.beta.threads.messages.list(thread.id, { limit: 1 })).data;
  assert.equal(textOf(stored), expected);
  assert.equal(messageStep.step_details.message_creation.message_id, stored.id);
});

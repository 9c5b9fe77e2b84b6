// Runs with openai-node's polling helpers: createAndPoll, and a function-calling loop driven
// through submitToolOutputsAndPoll.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { POLL, WEATHER_TOOL, client, functionTool, script, tag, textOf } from './support.mjs';

const openai = client();

const TIME_TOOL = functionTool('get_time', { zone: { type: 'string' } });

/** What the tool functions answer. */
const FUNCTIONS = {
  get_weather: ({ city }) => ({ Paris: '22C', Rome: '18C' })[city] ?? 'unknown',
  get_time: ({ zone }) => (zone === 'Europe/Paris' ? '09:30' : 'unknown'),
};

test('createAndPoll: a run answers with the scripted text', { timeout: 60_000 }, async () => {
  const marker = tag();
  const assistant = await openai.beta.assistants.create({
    model: 'gpt-4o',
    instructions: 'Be brief.',
  });
  const thread = await openai.beta.threads.create({
    messages: [
      {
        role: 'user',
        content: `hello ${marker} ${script({ reply: `Hi there, ${marker} is noted.` })}`,
      },
    ],
  });

  const run = await openai.beta.threads.runs.createAndPoll(
    thread.id,
    { assistant_id: assistant.id, metadata: { marker } },
    POLL,
  );

  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.match(run.id, /^run_/);
  assert.equal(run.object, 'thread.run');
  assert.equal(run.thread_id, thread.id);
  assert.equal(run.assistant_id, assistant.id);
  assert.equal(run.model, 'gpt-4o');
  assert.equal(run.instructions, 'Be brief.');
  assert.deepEqual(run.metadata, { marker });
  assert.equal(run.last_error, null);
  assert.equal(run.required_action, null);
  assert.equal(typeof run.completed_at, 'number');
  assert.ok(run.usage.completion_tokens > 0);
  assert.equal(run.usage.total_tokens, run.usage.prompt_tokens + run.usage.completion_tokens);

  const messages = (await openai.beta.threads.messages.list(thread.id, { order: 'asc' })).data;
  assert.deepEqual(
    messages.map((m) => m.role),
    ['user', 'assistant'],
  );
  const answer = messages[1];
  assert.equal(textOf(answer), `Hi there, ${marker} is noted.`);
  assert.equal(answer.run_id, run.id);
  assert.equal(answer.assistant_id, assistant.id);
  assert.equal(answer.status, 'completed');

  const steps = (await openai.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data;
  assert.equal(steps.length, 1);
  assert.equal(steps[0].type, 'message_creation');
  assert.equal(steps[0].status, 'completed');
  assert.equal(steps[0].step_details.message_creation.message_id, answer.id);

  // The same thread again, with a new scripted answer: a second run, a second message.
  await openai.beta.threads.messages.create(thread.id, {
    role: 'user',
    content: `again ${marker} ${script({ reply: `Second answer for ${marker}.` })}`,
  });
  const second = await openai.beta.threads.runs.createAndPoll(
    thread.id,
    { assistant_id: assistant.id },
    POLL,
  );
  assert.equal(second.status, 'completed', JSON.stringify(second.last_error));
  assert.notEqual(second.id, run.id);
  const all = (await openai.beta.threads.messages.list(thread.id, { order: 'asc' })).data;
  assert.deepEqual(
    all.map((m) => [m.role, m.role === 'assistant' ? textOf(m) : m.run_id]),
    [
      ['user', null],
      ['assistant', `Hi there, ${marker} is noted.`],
      ['user', null],
      ['assistant', `Second answer for ${marker}.`],
    ],
  );
  assert.equal(all[3].run_id, second.id);
});

test('function calling: requires_action, then submitToolOutputsAndPoll', { timeout: 60_000 }, async () => {
  const marker = tag();
  const assistant = await openai.beta.assistants.create({
    model: 'gpt-4o',
    tools: [WEATHER_TOOL, TIME_TOOL],
  });
  const thread = await openai.beta.threads.create({
    messages: [
      {
        role: 'user',
        content:
          `weather and time? ${marker} ` +
          script({
            tool_calls: [
              { name: 'get_weather', arguments: { city: 'Paris' } },
              { name: 'get_weather', arguments: { city: 'Rome' } },
              { name: 'get_time', arguments: { zone: 'Europe/Paris' } },
            ],
            after_tools: 'Paris is {output0}, Rome is {output1}, and it is {output2} in Paris.',
          }),
      },
    ],
  });

  // The loop an application writes: run, answer every requested call, submit, repeat.
  let run = await openai.beta.threads.runs.createAndPoll(
    thread.id,
    { assistant_id: assistant.id },
    POLL,
  );
  const rounds = [];
  while (run.status === 'requires_action') {
    assert.equal(run.required_action.type, 'submit_tool_outputs');
    assert.equal(run.completed_at, null);
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    rounds.push(calls);
    const tool_outputs = calls.map((call) => {
      assert.equal(call.type, 'function');
      const output = FUNCTIONS[call.function.name](JSON.parse(call.function.arguments));
      return { tool_call_id: call.id, output };
    });
    const previous = run.id;
    run = await openai.beta.threads.runs.submitToolOutputsAndPoll(
      run.id,
      { thread_id: thread.id, tool_outputs },
      POLL,
    );
    assert.equal(run.id, previous, 'the same run resumes');
  }

  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  assert.equal(rounds.length, 1);
  const [calls] = rounds;
  assert.deepEqual(
    calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]),
    [
      ['get_weather', { city: 'Paris' }],
      ['get_weather', { city: 'Rome' }],
      ['get_time', { zone: 'Europe/Paris' }],
    ],
  );
  assert.equal(new Set(calls.map((c) => c.id)).size, 3, 'every call has its own id');
  assert.equal(run.required_action, null);

  const [answer] = (await openai.beta.threads.messages.list(thread.id, { limit: 1 })).data;
  assert.equal(answer.role, 'assistant');
  assert.equal(textOf(answer), 'Paris is 22C, Rome is 18C, and it is 09:30 in Paris.');
  assert.equal(answer.run_id, run.id);

  // The steps: the tool calls with their outputs, then the answer.
  const steps = (
    await openai.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' })
  ).data;
  assert.deepEqual(
    steps.map((s) => [s.type, s.status]),
    [
      ['tool_calls', 'completed'],
      ['message_creation', 'completed'],
    ],
  );
  assert.deepEqual(
    steps[0].step_details.tool_calls.map((c) => [c.id, c.function.output]),
    [
      [calls[0].id, '22C'],
      [calls[1].id, '18C'],
      [calls[2].id, '09:30'],
    ],
  );
  assert.equal(steps[1].step_details.message_creation.message_id, answer.id);
});

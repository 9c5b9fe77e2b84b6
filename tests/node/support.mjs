// Shared helpers of the openai-node end-to-end tests (not a test file itself).
//
// The tests talk to a running assistd whose chat model is the scripted backend of
// tests/support/scripted_chat.py: a user message containing `#script {json}` decides the
// model's next answer (`reply`, `tool_calls` + `after_tools`, `delay_ms`).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import OpenAI from 'openai';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must be set (tests/e2e/test_node.py sets it)`);
  }
  return value;
}

/** The server's `/v1` base URL, e.g. http://127.0.0.1:8000/v1. */
export const BASE_URL = required('ASSISTD_BASE_URL');
/** A key of the project the tests work in. */
export const API_KEY = required('ASSISTD_API_KEY');
/** A key of another project. */
export const OTHER_KEY = required('ASSISTD_OTHER_KEY');

/** How often the SDK's *AndPoll helpers poll (the server also hints 50 ms in tests). */
export const POLL = { pollIntervalMs: 50 };

/** The official client pointed at the server, with no retries to hide failures. */
export function client(apiKey = API_KEY, options = {}) {
  return new OpenAI({ baseURL: BASE_URL, apiKey, maxRetries: 0, timeout: 60_000, ...options });
}

/** A user message that scripts the chat backend's next answer. */
export function script(fields) {
  return `#script ${JSON.stringify(fields)}`;
}

/** A short unique marker, to tell this run's objects apart. */
export function tag() {
  return randomUUID().slice(0, 8);
}

/** The text of a message's text parts. */
export function textOf(message) {
  return message.content
    .filter((part) => part.type === 'text')
    .map((part) => part.text.value)
    .join('');
}

/** `promise` must reject with an instance of `ErrorClass` of HTTP `status`; returns the error. */
export async function rejectsWith(promise, ErrorClass, status) {
  let error;
  try {
    await promise;
  } catch (caught) {
    error = caught;
  }
  assert.ok(error !== undefined, `expected a ${ErrorClass.name}, but the call succeeded`);
  assert.ok(
    error instanceof ErrorClass,
    `expected a ${ErrorClass.name}, got ${error?.constructor?.name}: ${error?.message}`,
  );
  assert.equal(error.status, status);
  return error;
}

/** A function tool the scripted model can call. */
export function functionTool(name, properties) {
  return {
    type: 'function',
    function: {
      name,
      description: `The ${name} function.`,
      parameters: { type: 'object', properties, required: Object.keys(properties) },
    },
  };
}

export const WEATHER_TOOL = functionTool('get_weather', { city: { type: 'string' } });

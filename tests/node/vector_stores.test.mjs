// Vector stores with openai-node: files uploaded with toFile, a batch through
// vectorStores.fileBatches.uploadAndPoll (the server parses and embeds them with its local
// model), and a search that finds the file holding the asked-about sentence.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI, { toFile } from 'openai';

import { POLL, client, rejectsWith, tag } from './support.mjs';

const openai = client();

const DOCS = {
  turbine: {
    name: 'turbine.txt',
    text: 'The Zorbex turbine must be lubricated with heliotrope grease every forty-one days.',
    question: 'How often is the Zorbex turbine lubricated?',
  },
  garden: {
    name: 'garden.md',
    text: '# Garden\n\nThe moonflower beds in the west garden are watered with rain from the copper cistern.',
    question: 'What water do the moonflower beds get?',
  },
  ledger: {
    name: 'ledger.json',
    text: JSON.stringify({ note: 'The quarterly ledger of the Vantor guild is audited by three clerks.' }),
    question: 'Who audits the Vantor guild ledger?',
  },
};

test('fileBatches.uploadAndPoll: every file completed, then found by search', { timeout: 120_000 }, async () => {
  const marker = tag();
  const store = await openai.vectorStores.create({ name: `node-${marker}`, metadata: { marker } });
  assert.match(store.id, /^vs_/);
  assert.equal(store.object, 'vector_store');
  assert.equal(store.name, `node-${marker}`);
  assert.equal(store.file_counts.total, 0);

  // One file uploaded beforehand (by id), two uploaded by the helper itself.
  const ledger = await openai.files.create({
    file: await toFile(Buffer.from(DOCS.ledger.text), DOCS.ledger.name, { type: 'application/json' }),
    purpose: 'assistants',
  });
  const batch = await openai.vectorStores.fileBatches.uploadAndPoll(
    store.id,
    {
      files: [
        await toFile(Buffer.from(DOCS.turbine.text), DOCS.turbine.name, { type: 'text/plain' }),
        await toFile(Buffer.from(DOCS.garden.text), DOCS.garden.name, { type: 'text/markdown' }),
      ],
      fileIds: [ledger.id],
    },
    POLL,
  );

  assert.match(batch.id, /^vsfb_/);
  assert.equal(batch.object, 'vector_store.files_batch');
  assert.equal(batch.vector_store_id, store.id);
  assert.equal(batch.status, 'completed');
  assert.deepEqual(batch.file_counts, {
    in_progress: 0,
    completed: 3,
    failed: 0,
    cancelled: 0,
    total: 3,
  });

  const files = [];
  for await (const f of openai.vectorStores.fileBatches.listFiles(batch.id, {
    vector_store_id: store.id,
  })) {
    files.push(f);
  }
  assert.equal(files.length, 3);
  for (const f of files) {
    assert.equal(f.object, 'vector_store.file');
    assert.equal(f.vector_store_id, store.id);
    assert.equal(f.status, 'completed');
    assert.equal(f.last_error, null);
    assert.ok(f.usage_bytes > 0);
  }
  // Which upload is which: the names the helper gave the files went through toFile.
  const idByName = {};
  for (const f of files) idByName[(await openai.files.retrieve(f.id)).filename] = f.id;
  assert.deepEqual(Object.keys(idByName).sort(), ['garden.md', 'ledger.json', 'turbine.txt']);
  assert.equal(idByName['ledger.json'], ledger.id);

  const current = await openai.vectorStores.retrieve(store.id);
  assert.equal(current.status, 'completed');
  assert.equal(current.file_counts.completed, 3);
  assert.equal(current.file_counts.total, 3);
  assert.equal(
    current.usage_bytes,
    files.reduce((sum, f) => sum + f.usage_bytes, 0),
  );

  // The parsed text is what was uploaded, and each question finds its own file first.
  const parsed = await openai.vectorStores.files.content(idByName['turbine.txt'], {
    vector_store_id: store.id,
  });
  const parsedText = [];
  for await (const part of parsed) parsedText.push(part.text);
  assert.ok(parsedText.join('').includes(DOCS.turbine.text), parsedText.join(''));
  for (const doc of Object.values(DOCS)) {
    const results = await openai.vectorStores.search(store.id, { query: doc.question });
    assert.ok(results.data.length >= 1, doc.question);
    const [best] = results.data;
    assert.equal(best.filename, doc.name, `${doc.question} -> ${best.filename}`);
    assert.equal(best.file_id, idByName[doc.name]);
    assert.ok(best.score > 0 && best.score <= 1, String(best.score));
  }

  const deleted = await openai.vectorStores.delete(store.id);
  assert.deepEqual(deleted, { id: store.id, object: 'vector_store.deleted', deleted: true });
  await rejectsWith(openai.vectorStores.retrieve(store.id), OpenAI.NotFoundError, 404);
});

// The official `cloudflare` SDK (tests/clients/package.json) against kvapi:
// every Workers KV call a program makes, checked value for value.
//
// Run by test_sdk.sh with KVAPI_BASE (http://127.0.0.1:PORT/client/v4),
// KVAPI_TOKEN and KVAPI_ACCOUNT in the environment; ROOT_DIR names kvapi's
// ROOT, so the namespace's store can be checked to exist.  Prints one TAP
// line per check and exits non-zero with a "not ok" line naming the
// mismatch (got and want) on the first one that fails, or on any error.
import Cloudflare from 'cloudflare';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import crypto from 'node:crypto';

const base = process.env.KVAPI_BASE;
const token = process.env.KVAPI_TOKEN;
const account_id = process.env.KVAPI_ACCOUNT;
const root = process.env.ROOT_DIR;
if (!base || !token || !account_id || !root) {
  console.error('sdk.mjs: KVAPI_BASE, KVAPI_TOKEN, KVAPI_ACCOUNT and ROOT_DIR must be set');
  process.exit(2);
}

// No retries: a failing request must fail the test now, not be hidden by a
// second try; a request that hangs ends after 60 s.
const client = new Cloudflare({ apiToken: token, baseURL: base, maxRetries: 0, timeout: 60000 });

let n = 0;
// check(desc, fn): one check; fn throws (an assert) on a mismatch.
async function check(desc, fn) {
  n++;
  try {
    await fn();
    console.log(`ok ${n} - ${desc}`);
  } catch (e) {
    console.log(`not ok ${n} - ${desc}`);
    for (const line of String(e?.stack ?? e).split('\n').slice(0, 12)) console.log(`#   ${line}`);
    console.log(`1..${n}`);
    process.exit(1);
  }
}

// rejects(promise): the APIError it fails with (a check fails if it
// succeeds or fails otherwise).
async function rejects(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof Cloudflare.APIError) return e;
    throw e;
  }
  throw new Error('the request succeeded');
}

const bytes = async (resp) => Buffer.from(await resp.arrayBuffer());
const now = () => Math.floor(Date.now() / 1000);

// --- namespaces -------------------------------------------------------------
let ns;
await check('namespaces.create returns a 32-hex id and the title', async () => {
  ns = await client.kv.namespaces.create({ account_id, title: 'sdk namespace' });
  assert.match(ns.id, /^[0-9a-f]{32}$/);
  assert.equal(ns.title, 'sdk namespace');
});
const namespace_id = ns.id;
console.log(`# namespace ${namespace_id}`);
await check('the namespace is a store at ROOT/<id>', () => {
  assert.ok(fs.statSync(`${root}/${namespace_id}`).isDirectory());
});
await check('namespaces.create refuses a title already taken (code 10014)', async () => {
  const e = await rejects(client.kv.namespaces.create({ account_id, title: 'sdk namespace' }));
  assert.equal(e.status, 400);
  assert.equal(e.errors[0]?.code, 10014);
});
await check('namespaces.list (auto-paging) shows the namespace with its title', async () => {
  const all = [];
  for await (const x of client.kv.namespaces.list({ account_id })) all.push(x);
  assert.deepEqual(all.filter((x) => x.id === namespace_id).map((x) => x.title), ['sdk namespace']);
  assert.equal(all.length, 1);
});
await check('namespaces.get returns the title', async () => {
  const got = await client.kv.namespaces.get(namespace_id, { account_id });
  assert.equal(got.id, namespace_id);
  assert.equal(got.title, 'sdk namespace');
});

const ids = { account_id, namespace_id };

// --- values -------------------------------------------------------------------
// Every byte value, then random bytes: NUL and invalid UTF-8 must survive.
const bin = Buffer.concat([Buffer.from([...Array(256).keys()]), crypto.randomBytes(300000)]);
const meta = { owner: 'sdk', tags: ['a', 'b'], n: 1.5, nested: { ok: true } };
let before, after;
await check('values.update of a binary value with metadata and expiration_ttl', async () => {
  before = now();
  const r = await client.kv.namespaces.values.update('bin/ary key?', {
    ...ids,
    value: new File([bin], 'value'),
    metadata: JSON.stringify(meta),
    expiration_ttl: 3600,
  });
  after = now();
  assert.ok(r === null || typeof r === 'object');
});
await check('values.get returns the binary value byte for byte', async () => {
  const got = await bytes(await client.kv.namespaces.values.get('bin/ary key?', ids));
  assert.equal(got.length, bin.length);
  assert.ok(got.equals(bin), 'the bytes differ');
});
await check('values.get says the expiration (now + 3600) in the expiration header', async () => {
  const resp = await client.kv.namespaces.values.get('bin/ary key?', ids);
  const exp = Number(resp.headers.get('expiration'));
  assert.ok(exp >= before + 3600 && exp <= after + 3601, `expiration header ${resp.headers.get('expiration')}, put between ${before} and ${after}`);
});
await check('metadata.get returns the metadata', async () => {
  assert.deepEqual(await client.kv.namespaces.metadata.get('bin/ary key?', ids), meta);
});
await check('values.update of a text value (no metadata) and values.get', async () => {
  await client.kv.namespaces.values.update('text', { ...ids, value: 'héllo wörld ✓' });
  const got = await bytes(await client.kv.namespaces.values.get('text', ids));
  assert.equal(got.toString('utf8'), 'héllo wörld ✓');
});
await check('a put replaces value, metadata and expiration', async () => {
  await client.kv.namespaces.values.update('bin/ary key?', { ...ids, value: 'replaced' });
  const resp = await client.kv.namespaces.values.get('bin/ary key?', ids);
  assert.equal(resp.headers.get('expiration'), null);
  assert.equal((await bytes(resp)).toString(), 'replaced');
  assert.equal((await client.kv.namespaces.metadata.get('bin/ary key?', ids)) ?? null, null);
});
await check('values.get of a missing key: 404 with code 10009', async () => {
  const e = await rejects(client.kv.namespaces.values.get('no such key', ids));
  assert.equal(e.status, 404);
  assert.equal(e.errors[0]?.code, 10009);
  assert.match(e.errors[0]?.message ?? '', /key not found/);
});
await check('metadata.get of a missing key: 404 with code 10009', async () => {
  const e = await rejects(client.kv.namespaces.metadata.get('no such key', ids));
  assert.equal(e.status, 404);
  assert.equal(e.errors[0]?.code, 10009);
});
await check('values.update with expiration_ttl 30: 400 with Workers KV\'s message', async () => {
  const e = await rejects(client.kv.namespaces.values.update('short', { ...ids, value: 'x', expiration_ttl: 30 }));
  assert.equal(e.status, 400);
  assert.equal(e.errors[0]?.message, 'Invalid expiration_ttl of 30. Expiration TTL must be at least 60.');
  const e2 = await rejects(client.kv.namespaces.values.get('short', ids));
  assert.equal(e2.status, 404, 'the refused put stored nothing');
});
await check('values.delete, then the key is gone', async () => {
  await client.kv.namespaces.values.delete('text', ids);
  const e = await rejects(client.kv.namespaces.values.get('text', ids));
  assert.equal(e.status, 404);
});

await check('values.update with an absolute expiration, shown in the expiration header', async () => {
  const at = now() + 7200;
  await client.kv.namespaces.values.update('at', { ...ids, value: 'timed', expiration: at });
  const resp = await client.kv.namespaces.values.get('at', ids);
  assert.equal(resp.headers.get('expiration'), String(at));
  assert.equal((await bytes(resp)).toString(), 'timed');
});
await check('an empty value puts and reads back empty', async () => {
  await client.kv.namespaces.values.update('empty', { ...ids, value: '' });
  assert.equal((await bytes(await client.kv.namespaces.values.get('empty', ids))).length, 0);
});

// The largest value Workers KV takes (25 MiB) goes through whole; one byte
// more is refused with its message and stores nothing.
const MAX = 25 * 1024 * 1024;
const big = crypto.randomBytes(MAX);
await check('a 25 MiB value (the limit) puts and reads back byte for byte', async () => {
  await client.kv.namespaces.values.update('big', { ...ids, value: new File([big], 'value') });
  const got = await bytes(await client.kv.namespaces.values.get('big', ids));
  assert.equal(got.length, MAX);
  assert.ok(got.equals(big), 'the bytes differ');
});
await check('a value of 25 MiB + 1 byte: 413 with Workers KV\'s message, the old value kept', async () => {
  const e = await rejects(client.kv.namespaces.values.update('big', {
    ...ids, value: new File([big, Buffer.from('x')], 'value'),
  }));
  assert.equal(e.status, 413);
  assert.equal(e.errors[0]?.message, `Value length of ${MAX + 1} exceeds limit of ${MAX}.`);
  const got = await bytes(await client.kv.namespaces.values.get('big', ids));
  assert.ok(got.equals(big), 'the stored value changed');
  await client.kv.namespaces.values.delete('big', ids);
});

// Requests at the same time: 40 writers and their readers, each value
// distinct, all answered and none mixed up.
await check('40 concurrent values.update then 40 concurrent values.get', async () => {
  const vals = Array.from({ length: 40 }, (_, i) => crypto.randomBytes(1000 + i * 997));
  await Promise.all(vals.map((v, i) => client.kv.namespaces.values.update(`conc:${i}`, { ...ids, value: new File([v], 'value') })));
  const got = await Promise.all(vals.map(async (_, i) => bytes(await client.kv.namespaces.values.get(`conc:${i}`, ids))));
  for (const [i, v] of vals.entries()) assert.ok(got[i].equals(v), `conc:${i} differs`);
  await client.kv.namespaces.keys.bulkDelete(namespace_id, { account_id, body: vals.map((_, i) => `conc:${i}`) });
});

// --- bulk and paged listing --------------------------------------------------
const N = 2500;
const key = (i) => `page:${String(i).padStart(5, '0')}`;
const all = Array.from({ length: N }, (_, i) => key(i));
await check(`keys.bulkUpdate of ${N} keys in one request`, async () => {
  const body = all.map((k, i) => ({ key: k, value: `v${i}` }));
  body[7] = { key: key(7), value: Buffer.from([0, 255, 1, 254]).toString('base64'), base64: true };
  body[8] = { key: key(8), value: '{"json":[1,2]}', metadata: { m: 8 } };
  body[9] = { key: key(9), value: 'ttl', expiration_ttl: 600 };
  const r = await client.kv.namespaces.keys.bulkUpdate(namespace_id, { account_id, body });
  assert.equal(r?.successful_key_count ?? N, N);
  assert.deepEqual(r?.unsuccessful_keys ?? [], []);
});

// pages(limit): every page of keys.list under "page:", each page's names
// and result_info.
async function pages(limit) {
  const out = [];
  const query = { account_id, prefix: 'page:' };
  if (limit) query.limit = limit;
  const first = await client.kv.namespaces.keys.list(namespace_id, query);
  for await (const page of first.iterPages()) {
    out.push({ names: page.result.map((k) => k.name), info: page.result_info, keys: page.result });
  }
  return out;
}
for (const [limit, want] of [[undefined, 3], [600, 5]]) {
  await check(`keys.list ${limit ? `limit ${limit}` : 'default limit'} pages by cursor over ${N} keys: ${want} pages, every key once, in order`, async () => {
    const ps = await pages(limit);
    assert.equal(ps.length, want, `${ps.length} pages: ${ps.map((p) => p.names.length).join(', ')}`);
    for (const [i, p] of ps.entries()) {
      assert.equal(p.info.count, p.names.length, `page ${i}: result_info.count`);
      if (i < ps.length - 1) assert.ok(p.info.cursor, `page ${i}: a cursor before the last page`);
    }
    assert.equal(ps.at(-1).info.cursor, '', 'the last page has an empty cursor');
    assert.deepEqual(ps.flatMap((p) => p.names), all);
  });
}
await check('keys.list shows the bulk entry\'s metadata and expiration', async () => {
  const ps = await pages();
  const ks = ps.flatMap((p) => p.keys);
  assert.deepEqual(ks[8], { name: key(8), metadata: { m: 8 } });
  assert.ok(ks[9].expiration >= now() + 500, `expiration ${ks[9].expiration}`);
  assert.deepEqual(ks[10], { name: key(10) });
});
await check('values.get of the base64 bulk entry returns the decoded bytes', async () => {
  const got = await bytes(await client.kv.namespaces.values.get(key(7), ids));
  assert.ok(got.equals(Buffer.from([0, 255, 1, 254])), got.toString('hex'));
});
await check('keys.bulkGet with withMetadata: value, metadata, expiration; null for a missing key', async () => {
  const r = await client.kv.namespaces.keys.bulkGet(namespace_id, {
    account_id, keys: [key(1), key(8), key(9), 'page:missing'], withMetadata: true,
  });
  assert.equal(r.values[key(1)]?.value, 'v1');
  assert.equal(r.values[key(1)].metadata ?? null, null);
  assert.deepEqual(r.values[key(8)], { value: '{"json":[1,2]}', metadata: { m: 8 } });
  assert.equal(r.values[key(9)].value, 'ttl');
  assert.ok(r.values[key(9)].expiration >= now() + 500, JSON.stringify(r.values[key(9)]));
  assert.equal(r.values['page:missing'], null);
  assert.equal(Object.keys(r.values).length, 4);
});
await check('keys.bulkGet without metadata gives the values; type json parses them', async () => {
  const r = await client.kv.namespaces.keys.bulkGet(namespace_id, { account_id, keys: [key(1), key(2)] });
  assert.deepEqual(r.values, { [key(1)]: 'v1', [key(2)]: 'v2' });
  const j = await client.kv.namespaces.keys.bulkGet(namespace_id, { account_id, keys: [key(8)], type: 'json' });
  assert.deepEqual(j.values, { [key(8)]: { json: [1, 2] } });
});
await check(`keys.bulkDelete of ${N} keys (and a missing one), then none is listed`, async () => {
  await client.kv.namespaces.keys.bulkDelete(namespace_id, { account_id, body: [...all, 'page:missing'] });
  const ps = await pages();
  assert.deepEqual(ps.flatMap((p) => p.names), []);
  assert.equal(ps.at(-1).info.cursor, '');
});

// --- more namespaces: pages, rename, delete --------------------------------
await check('namespaces.list pages by page number (per_page 5) over 12 namespaces: each once, by title', async () => {
  for (let i = 1; i <= 11; i++) {
    await client.kv.namespaces.create({ account_id, title: `ns ${String(i).padStart(2, '0')}` });
  }
  const first = await client.kv.namespaces.list({ account_id, per_page: 5, order: 'title', direction: 'asc' });
  const titles = [];
  let pagesSeen = 0;
  // The SDK asks for pages until one is empty (so does wrangler).
  for await (const page of first.iterPages()) {
    if (page.result.length) pagesSeen++;
    titles.push(...page.result.map((x) => x.title));
    assert.equal(page.result_info.total_count, 12);
  }
  assert.deepEqual(titles, [...Array.from({ length: 11 }, (_, i) => `ns ${String(i + 1).padStart(2, '0')}`), 'sdk namespace']);
  assert.equal(pagesSeen, 3);
});
await check('namespaces.update renames; the store keeps its keys', async () => {
  await client.kv.namespaces.update(namespace_id, { account_id, title: 'renamed' });
  assert.equal((await client.kv.namespaces.get(namespace_id, { account_id })).title, 'renamed');
  assert.equal((await bytes(await client.kv.namespaces.values.get('bin/ary key?', ids))).toString(), 'replaced');
});
await check('namespaces.delete removes a namespace: then 404 with code 10013', async () => {
  const victim = await client.kv.namespaces.create({ account_id, title: 'to delete' });
  await client.kv.namespaces.values.update('k', { account_id, namespace_id: victim.id, value: 'v' });
  await client.kv.namespaces.delete(victim.id, { account_id });
  const e = await rejects(client.kv.namespaces.get(victim.id, { account_id }));
  assert.equal(e.status, 404);
  assert.equal(e.errors[0]?.code, 10013);
  const e2 = await rejects(client.kv.namespaces.values.get('k', { account_id, namespace_id: victim.id }));
  assert.equal(e2.status, 404);
});

// --- auth ---------------------------------------------------------------------
await check('a wrong token is refused with a 4xx and no data', async () => {
  const bad = new Cloudflare({ apiToken: `not-${token}`, baseURL: base, maxRetries: 0, timeout: 60000 });
  const e = await rejects(bad.kv.namespaces.get(namespace_id, { account_id }));
  assert.ok(e.status === 401 || e.status === 403, `status ${e.status}`);
});

console.log(`1..${n}`);

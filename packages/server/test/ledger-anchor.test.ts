/**
 * Anchoring from the running platform (issue #13): the cloud puts its witnessed checkpoints on the anchor contract
 * of a real JSON-RPC node (ganache 7.9 as a child process on 127.0.0.1, one for this file), with the hospitals'
 * witnesses' chain cosignatures obtained over HTTP, and an auditor checks the served log against what the chain
 * anchored: a cloud that shows an auditor an older (genuine, witnessed) checkpoint to hide later entries is caught.
 *
 * The same platform then loses a witness (riverside's server stops listening): uploads are accepted with their
 * receipts pending, and complete once it is back (docs/ledger.md § Upload receipts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '@medshare/db';
import type { Server } from 'node:http';
import { IntegrityError } from '@medshare/crypto';
import { AnchorClient, LedgerClient, parseVerifierKey, verifyInclusionBundle, verifyRemoteLog, type InclusionBundle, type TrustPolicy } from '@medshare/ledger';
import { startGanache, type GanacheNode } from '../../ledger/test/ganache.ts';
import { LEDGER_KEY_NAME } from '../src/index.ts';
import { ADMINS, sampleBundle, startCast, type Cast } from './harness.ts';

let node: GanacheNode;
let db: Database;
let cast: Cast;
let admin: AnchorClient;
let trust: TrustPolicy;
let ledgerUrl: string;

before(async () => {
  node = await startGanache();
  db = await openDatabase();
  admin = await AnchorClient.deploy(node.wallet(0));
  // The cloud's anchorer account; its key is handed to the service (in `medshare serve`: LEDGER_PRIVATE_KEY), never stored.
  const anchorer = admin.as(node.wallet(1));
  // Pending receipts: an upload waits 3 s for a witnessed checkpoint; the log offers a checkpoint below quorum to the
  // witnesses again every 0.5 s (backing off), and the gateway completes pending receipts every 0.5 s.
  cast = await startCast(db, {
    ledgerAnchor: { client: anchorer, intervalMs: 3_600_000 },
    receiptWaitMs: 3_000,
    ledgerCosignRetryMs: 500,
    receiptRetryMs: 500,
  });
  ledgerUrl = new URL('/ledger', cast.base).href;
  const keys = await new LedgerClient(ledgerUrl).keys();
  trust = { log: parseVerifierKey(keys.log), witnesses: keys.witnesses.map(parseVerifierKey) };
  // The consortium's admin registers the log: its anchorer and the hospitals' witnesses' chain addresses, a majority quorum.
  const addresses = await Promise.all(
    ['st-marys', 'riverside'].map(
      async (h) => ((await (await fetch(new URL(`/witness/${h}/key`, cast.urls.hospitals[h]!))).json()) as { chainAddress: string }).chainAddress,
    ),
  );
  await admin.configureLog(LEDGER_KEY_NAME, node.wallet(1).address, addresses, 2);
  await cast.patient.register();
  await cast.gateway.enrol(sampleBundle().entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id, cast.patient.key.patientId);
  await cast.gateway.upload(sampleBundle());
  // One more batch, so that an older witnessed checkpoint exists below the one anchored.
  await cast.platform.ledger.flush();
  await cast.platform.ledger.append(access(0));
  await cast.platform.ledger.flush();
});

/** A record access by a made-up doctor (a ledger entry of its own batch). */
function access(i: number) {
  const psn = `psn:${String(i).repeat(22).slice(0, 22)}`;
  return {
    type: 'record-access' as const,
    patient: psn,
    agents: [{ who: psn, role: 'doctor' }],
    source: 'st-marys',
    records: [{ hash: `sha256:${'1'.repeat(64)}`, category: 'lab' }],
  };
}

after(async () => {
  await cast?.platform.close();
  await db?.close();
  await node?.stop();
});

test("the running cloud anchors its witnessed checkpoint with the hospitals' chain cosignatures; the chain proves the served one", async () => {
  const anchoring = cast.platform.services.cloud.anchoring!;
  await cast.platform.ledger.flush();
  const receipt = await anchoring.anchorNow();
  assert.equal(receipt.treeSize, cast.platform.ledger.size);
  assert.deepEqual(anchoring.health(), { anchoredSize: receipt.treeSize, anchorFailures: 0 });
  const served = await new LedgerClient(ledgerUrl).checkpoint();
  assert.equal((await admin.proveAnchored(served, trust.log)).treeSize, receipt.treeSize);
  const anchored = await admin.latestAnchor(LEDGER_KEY_NAME);
  const report = await verifyRemoteLog(new LedgerClient(ledgerUrl), { ...trust, anchored: [anchored!] });
  assert.equal(report.ok, true, report.problem);
});

test('a cloud showing an auditor an older witnessed checkpoint to hide later entries: the anchored one names the cut', async () => {
  const anchored = (await admin.latestAnchor(LEDGER_KEY_NAME))!;
  // A genuine checkpoint the witnesses cosigned earlier, served in place of the latest.
  const older = (
    await db.query<{ size: number; note: string }>('SELECT size, note FROM ledger_checkpoints WHERE size < $1 ORDER BY size DESC LIMIT 1', [anchored.size])
  ).rows[0]!;
  assert.ok(older !== undefined && older.size < anchored.size);
  class RollingBackCloud extends LedgerClient {
    override async checkpoint(): Promise<string> {
      return older.note;
    }
  }
  const stale = new RollingBackCloud(ledgerUrl);
  const unanchored = await verifyRemoteLog(stale, { ...trust, quorum: 0 });
  assert.equal(unanchored.ok, true, `without the chain the older view checks out: ${unanchored.problem}`);
  const report = await verifyRemoteLog(stale, { ...trust, quorum: 0, anchored: [anchored] });
  assert.equal(report.ok, false);
  assert.equal(report.firstBadIndex, older.size, report.problem);
});

test("anchoring without the witnesses' chain cosignatures fails and is counted (the contract requires its quorum)", async () => {
  const anchoring = cast.platform.services.cloud.anchoring!;
  const before = anchoring.health().anchorFailures;
  // Reconfigured by the admin with witnesses that are not the hospitals': their signatures are missing.
  await admin.configureLog(LEDGER_KEY_NAME, node.wallet(1).address, [node.wallet(5).address, node.wallet(6).address], 2);
  await cast.platform.ledger.append(access(1));
  await cast.platform.ledger.flush();
  await assert.rejects(anchoring.anchorNow());
  assert.equal(anchoring.health().anchorFailures, before + 1);
});

/** Stops a service's HTTP server (its open connections too: the cloud's keep-alive ones), as a machine going down. */
async function takeDown(server: Server): Promise<void> {
  const closed = new Promise((resolve) => server.close(resolve));
  server.closeAllConnections();
  await closed;
}

/** Observations of the sample patient not uploaded before: new records, so new ledger entries. */
function observations(tag: string, n: number) {
  const fhirPatient = sampleBundle().entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: n }, (_, i) => ({
      resource: {
        resourceType: 'Observation',
        id: `${tag}-${i}`,
        status: 'final',
        code: { text: 'heart rate' },
        subject: { reference: `Patient/${fhirPatient}` },
        valueQuantity: { value: i },
      },
    })),
  };
}

const keptBundles = async (indices: readonly number[]) =>
  (
    await db.query<{ ledger_index: number; bundle: string; witnessed: boolean }>(
      'SELECT ledger_index, bundle, witnessed FROM gateway_receipts WHERE ledger_index = ANY($1::bigint[]) ORDER BY ledger_index',
      [indices],
    )
  ).rows.map((r) => ({ index: Number(r.ledger_index), bundle: JSON.parse(r.bundle) as InclusionBundle, witnessed: r.witnessed }));

test('a witness down: the upload is accepted, its receipts kept pending (never complete); the witness back, they complete and verify', async () => {
  const riverside = cast.platform.services.hospitals.find((h) => h.name === 'riverside')!;
  const port = Number(cast.urls.hospitals['riverside']!.port);
  await takeDown(riverside.app.server);
  // The administrator's list of receipts (GET /gateway/admin/receipts), as the portal's Administer screen shows it.
  const adminList = async () =>
    (
      (await (
        await fetch(new URL('/gateway/admin/receipts', cast.urls.hospitals['st-marys']!), { headers: { authorization: `Bearer ${ADMINS['st-marys']}` } })
      ).json()) as { receipts: Array<{ index: number; status: string }> }
    ).receipts;
  let pending: number[];
  let signedEntries: string[];
  try {
    const uploaded = await cast.gateway.upload(observations('witness-down', 70));
    assert.equal(uploaded.stored, 70, 'the upload is accepted and stored');
    assert.equal(uploaded.receipts.length, 2, '70 records: two record-create entries');
    assert.ok(
      uploaded.receipts.every((r) => r.status === 'pending'),
      JSON.stringify(uploaded.receipts),
    );
    pending = uploaded.receipts.map((r) => r.index);
    // The hospital's view: those two pending, nothing else.
    assert.deepEqual(
      (await cast.gateway.receipts({ status: 'pending' })).receipts.map((r) => [r.index, r.status]),
      pending.map((i) => [i, 'pending']),
    );
    // The administrator's list (GET /gateway/admin/receipts) shows them pending, not invalid.
    assert.deepEqual(
      (await adminList()).filter((r) => pending.includes(r.index)).map((r) => r.status),
      pending.map(() => 'pending'),
    );
    // What it keeps: the log's signed word (the entry is in a tree the log signed), refused at the witness quorum.
    const kept = await keptBundles(pending);
    for (const { bundle, witnessed } of kept) {
      assert.equal(witnessed, false);
      assert.equal(verifyInclusionBundle(bundle, { ...trust, quorum: 0 }).event.type.code, 'record-create');
      assert.throws(() => verifyInclusionBundle(bundle, trust), IntegrityError);
    }
    signedEntries = kept.map((k) => k.bundle.entry);
    // The patient's view: the upload is on her access log, pending rather than proven.
    const log = await cast.patient.provenAccessLog(trust);
    const uploads = log.filter((e) => e.ledgerIndex !== null && pending.includes(e.ledgerIndex));
    assert.ok(uploads.length > 0 && uploads.every((e) => e.action === 'upload' && e.pending === true && e.proof === null), JSON.stringify(uploads));
    // Asked on demand while the witness is still down: nothing completes.
    const onDemand = await cast.gateway.completeReceipts();
    assert.equal(onDemand.completed, 0);
    assert.equal(onDemand.pending, pending.length);
  } finally {
    await new Promise<void>((resolve) => riverside.app.server.listen(port, '127.0.0.1', resolve));
  }
  // Back: the log's retry obtains riverside's cosignature, the gateway's timer completes the receipts.
  for (const deadline = Date.now() + 60_000; (await cast.gateway.receipts({ status: 'pending' })).receipts.length > 0;) {
    assert.ok(Date.now() < deadline, 'the pending receipts did not complete within 60 s of the witness coming back');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const completed = await keptBundles(pending);
  assert.deepEqual(
    completed.map((c) => c.bundle.entry),
    signedEntries,
    'the same entries the log signed at upload',
  );
  for (const { bundle, witnessed } of completed) {
    assert.equal(witnessed, true);
    assert.equal(verifyInclusionBundle(bundle, trust).cosigners.length, 2);
  }
  assert.deepEqual(
    (await adminList()).filter((r) => pending.includes(r.index)).map((r) => r.status),
    pending.map(() => 'verified'),
  );
  const log = await cast.patient.provenAccessLog(trust);
  assert.ok(
    log.filter((e) => e.ledgerIndex !== null && pending.includes(e.ledgerIndex)).every((e) => e.pending === undefined && e.proof?.cosigners.length === 2),
  );
});

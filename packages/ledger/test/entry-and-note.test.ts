import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import {
  buildAuditEvent,
  canonicalBytes,
  formatCheckpoint,
  generateCheckpointKey,
  parseCheckpoint,
  parseEntry,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyCheckpointNote,
} from '../src/index.ts';
import { accessEvent, hashName, pseudonym } from './fixtures.ts';

test('an event is a FHIR AuditEvent in RFC 8785 canonical form (sorted keys, no whitespace)', () => {
  const event = buildAuditEvent(accessEvent('alice'), 7);
  const text = canonicalBytes(event).toString('utf8');
  assert.ok(text.startsWith('{"action":"R","agent":[{"requestor":true,"role":[{"text":"doctor"}],"who":{"identifier":{"value":"psn:'));
  assert.match(text, /"id":"7"/);
  assert.match(text, /"resourceType":"AuditEvent"/);
  assert.deepEqual(parseEntry(canonicalBytes(event)), event);
});

test('emergency access carries a v3-ActReason code; free text and identifiers are refused', () => {
  const emergency = buildAuditEvent({ ...accessEvent('bob'), type: 'emergency-access', emergencyReason: 'BTG' }, 0);
  assert.equal(emergency.purposeOfEvent?.[0]?.coding[0]?.code, 'BTG');
  const refuse = (change: object, kind: Function = MalformedInputError) =>
    assert.throws(() => buildAuditEvent({ ...accessEvent('bob'), ...change } as never, 0), kind as never);
  refuse({ type: 'emergency-access' }); // no reason
  refuse({ type: 'emergency-access', emergencyReason: 'patient unconscious, John Smith' });
  refuse({ emergencyReason: 'BTG' }); // reason on a non-emergency
  refuse({ patient: 'John Smith' });
  refuse({ patient: 'psn:short' });
  refuse({ agents: [{ who: 'dr.jones@hospital.example', role: 'doctor' }] });
  refuse({ agents: [] });
  refuse({ agents: Array.from({ length: 9 }, () => ({ who: pseudonym('x'), role: 'doctor' })) }, LimitExceededError);
  refuse({ records: [{ hash: 'deadbeef', category: 'lab' }] });
  refuse({ source: 'St. Mary Hospital' });
  refuse({ type: 'consent-grant' }); // no policy hash
  refuse({ policyHash: hashName('p') }); // policy hash on an access
  refuse({ recorded: new Date('invalid') });
  refuse({ type: 'delete-everything' });
  const grant = buildAuditEvent({ ...accessEvent('carol'), type: 'consent-grant', policyHash: hashName('policy') }, 1);
  assert.equal(grant.action, 'C');
  assert.equal(grant.entity.at(-1)?.type.code, 'policy');
});

test('a stored entry that is not canonical is refused', () => {
  const bytes = canonicalBytes(buildAuditEvent(accessEvent('alice'), 0));
  const pretty = Buffer.from(JSON.stringify(JSON.parse(bytes.toString()), null, 1));
  assert.throws(() => parseEntry(pretty), /canonical/);
  assert.throws(() => parseEntry(Buffer.from('{')), /not JSON/);
  assert.throws(() => parseEntry(Buffer.from('[]')), /not an AuditEvent/);
});

test('keys round-trip through the C2SP vkey and PRIVATE+KEY forms; a tampered key is refused', () => {
  const { signer, skey } = generateCheckpointKey('medshare.example/log');
  const again = parseSignerKey(skey);
  assert.equal(again.verifier.vkey, signer.verifier.vkey);
  const verifier = parseVerifierKey(signer.verifier.vkey);
  const sig = signer.sign('body\n', 1700000000);
  assert.equal(verifier.verify('body\n', sig), 1700000000);
  assert.equal(verifier.verify('other\n', sig), undefined);
  const [, name, id, key] = /^([^+]+)\+([^+]+)\+(.+)$/.exec(signer.verifier.vkey)!;
  assert.throws(() => parseVerifierKey(`${name}+00000000+${key}`), /key ID/);
  assert.throws(() => parseVerifierKey(`${name}+${id}`), MalformedInputError);
  assert.throws(() => parseVerifierKey(`bad name+${id}+${key}`), MalformedInputError);
  assert.throws(
    () => parseSignerKey('not a key'),
    (e: Error) => e instanceof MalformedInputError && !e.message.includes('not a key'),
  );
});

test('checkpoints are C2SP text: origin, size, base64 root; signature lines carry a cosignature/v1 timestamp', () => {
  const { signer } = generateCheckpointKey('medshare.example/log');
  const body = formatCheckpoint({ origin: 'medshare.example/log', size: 3, rootHash: Buffer.alloc(32, 1) });
  assert.equal(body, `medshare.example/log\n3\n${Buffer.alloc(32, 1).toString('base64')}\n`);
  const note = signNote(body, [signer], 1_800_000_000);
  assert.match(note, /\n\n— medshare\.example\/log [A-Za-z0-9+/=]+\n$/);
  const checkpoint = verifyCheckpointNote(note, signer.verifier);
  assert.equal(checkpoint.size, 3);
  assert.equal(checkpoint.time, 1_800_000_000);
  // The signature is keyID || u64 timestamp || 64-byte Ed25519 signature.
  assert.equal(parseNote(note).signatures[0]!.signature.length, 76);
  const other = generateCheckpointKey('medshare.example/log').signer;
  assert.throws(() => verifyCheckpointNote(note, other.verifier), /not signed by the log/);
  assert.throws(() => verifyCheckpointNote(note.replace('\n3\n', '\n4\n'), signer.verifier), /not signed/);
});

test('malformed checkpoints and notes get typed errors, oversized ones are refused before parsing', () => {
  for (const bad of ['', 'o\n3\n', 'o\n03\nAAAA\n', `o\n1\n${Buffer.alloc(31).toString('base64')}\n`, `o\n1\n${Buffer.alloc(32).toString('base64')}\next\n`]) {
    assert.throws(() => parseCheckpoint(bad), MalformedInputError);
  }
  assert.throws(() => parseNote('no signatures'), MalformedInputError);
  assert.throws(() => parseNote('body\n\n- dash name AAAA\n'), MalformedInputError);
  assert.throws(() => parseNote('x'.repeat(70_000)), LimitExceededError);
  assert.throws(() => parseNote(`body\n\n${'— a AAAAAAAA\n'.repeat(101)}`), LimitExceededError);
});
